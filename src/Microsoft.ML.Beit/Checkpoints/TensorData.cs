using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>Element types of checkpoint tensors, named as in safetensors headers.</summary>
public enum TensorDType
{
    /// <summary>32-bit IEEE float.</summary>
    F32,
    /// <summary>16-bit IEEE float.</summary>
    F16,
    /// <summary>bfloat16.</summary>
    BF16,
    /// <summary>64-bit IEEE float.</summary>
    F64,
    /// <summary>64-bit signed integer.</summary>
    I64,
    /// <summary>32-bit signed integer.</summary>
    I32,
    /// <summary>8-bit unsigned integer.</summary>
    U8,
    /// <summary>8-bit signed integer.</summary>
    I8,
    /// <summary>One byte per boolean.</summary>
    BOOL,
}

/// <summary>
/// A dense, row-major, little-endian tensor as stored in a checkpoint: element type, shape and raw bytes.
/// The common currency between checkpoint files, the TorchSharp model and the ONNX exporter.
/// </summary>
public sealed class TensorData
{
    /// <summary>Creates a tensor from raw little-endian bytes.</summary>
    public TensorData(TensorDType dtype, long[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        if (shape.Any(d => d < 0)) throw new ArgumentException("Shape dimensions must be non-negative.", nameof(shape));
        long expected = ElementCountOf(shape) * ElementSize(dtype);
        if (data.LongLength != expected)
            throw new ArgumentException($"Tensor of {dtype}[{string.Join(",", shape)}] needs {expected} bytes, got {data.LongLength}.", nameof(data));
        DType = dtype;
        Shape = shape;
        Data = data;
    }

    /// <summary>Element type.</summary>
    public TensorDType DType { get; }
    /// <summary>Dimensions, outermost first.</summary>
    public long[] Shape { get; }
    /// <summary>Raw little-endian bytes.</summary>
    public byte[] Data { get; }
    /// <summary>Number of elements.</summary>
    public long ElementCount => ElementCountOf(Shape);

    /// <summary>Size in bytes of one element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 => 2,
        TensorDType.F64 or TensorDType.I64 => 8,
        TensorDType.U8 or TensorDType.I8 or TensorDType.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    private static long ElementCountOf(long[] shape)
    {
        long n = 1;
        foreach (var d in shape) n = checked(n * d);
        return n;
    }

    /// <summary>A float32 tensor copied from <paramref name="values"/>.</summary>
    public static TensorData FromFloats(float[] values, params long[] shape)
    {
        var bytes = new byte[values.Length * 4];
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(bytes);
        return new TensorData(TensorDType.F32, shape, bytes);
    }

    /// <summary>An int64 tensor copied from <paramref name="values"/>.</summary>
    public static TensorData FromInt64s(long[] values, params long[] shape)
    {
        var bytes = new byte[values.Length * 8];
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(bytes);
        return new TensorData(TensorDType.I64, shape, bytes);
    }

    /// <summary>A bool tensor copied from <paramref name="values"/>.</summary>
    public static TensorData FromBools(bool[] values, params long[] shape) =>
        new(TensorDType.BOOL, shape, values.Select(v => v ? (byte)1 : (byte)0).ToArray());

    /// <summary>The values converted to float32 (F16, BF16 and F64 are widened or narrowed as PyTorch does).</summary>
    public float[] ToFloatArray()
    {
        int n = checked((int)ElementCount);
        var result = new float[n];
        var src = Data.AsSpan();
        switch (DType)
        {
            case TensorDType.F32:
                MemoryMarshal.Cast<byte, float>(src).CopyTo(result);
                break;
            case TensorDType.F16:
                for (int i = 0; i < n; i++) result[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src.Slice(i * 2));
                break;
            case TensorDType.BF16:
                for (int i = 0; i < n; i++) result[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(i * 2)) << 16);
                break;
            case TensorDType.F64:
                for (int i = 0; i < n; i++) result[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src.Slice(i * 8));
                break;
            case TensorDType.I64:
                for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadInt64LittleEndian(src.Slice(i * 8));
                break;
            case TensorDType.I32:
                for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadInt32LittleEndian(src.Slice(i * 4));
                break;
            case TensorDType.U8:
            case TensorDType.BOOL:
                for (int i = 0; i < n; i++) result[i] = src[i];
                break;
            case TensorDType.I8:
                for (int i = 0; i < n; i++) result[i] = (sbyte)src[i];
                break;
        }
        return result;
    }

    /// <summary>The values converted to int64 (integer and bool types only).</summary>
    public long[] ToInt64Array()
    {
        int n = checked((int)ElementCount);
        var result = new long[n];
        var src = Data.AsSpan();
        switch (DType)
        {
            case TensorDType.I64: MemoryMarshal.Cast<byte, long>(src).CopyTo(result); break;
            case TensorDType.I32: for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadInt32LittleEndian(src.Slice(i * 4)); break;
            case TensorDType.U8:
            case TensorDType.BOOL: for (int i = 0; i < n; i++) result[i] = src[i]; break;
            case TensorDType.I8: for (int i = 0; i < n; i++) result[i] = (sbyte)src[i]; break;
            default: throw new InvalidOperationException($"A {DType} tensor cannot be read as int64.");
        }
        return result;
    }

    /// <summary>The values as booleans (BOOL and integer types; non-zero is true).</summary>
    public bool[] ToBoolArray() => ToInt64Array().Select(v => v != 0).ToArray();

    /// <inheritdoc />
    public override string ToString() => $"{DType}[{string.Join(",", Shape)}]";
}
