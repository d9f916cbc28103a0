using Microsoft.ML.Beit.Checkpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Converts between checkpoint <see cref="TensorData"/> and TorchSharp tensors (raw bytes, no rounding).</summary>
internal static class BeitTensors
{
    /// <summary>A new CPU tensor holding a copy of <paramref name="data"/>, in its own element type.</summary>
    public static Tensor ToTorch(TensorData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var t = empty(data.Shape, ToScalarType(data.DType));
        if (data.Data.Length > 0) t.bytes = data.Data;
        return t;
    }

    /// <summary>A copy of <paramref name="tensor"/> (any device, any layout) as checkpoint data.</summary>
    public static TensorData ToTensorData(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var scope = NewDisposeScope();
        var t = tensor.detach().cpu().contiguous();
        var bytes = t.NumberOfElements == 0 ? [] : t.bytes.ToArray();
        return new TensorData(ToDType(t.dtype), t.shape, bytes);
    }

    internal static ScalarType ToScalarType(TensorDType d) => d switch
    {
        TensorDType.F32 => ScalarType.Float32,
        TensorDType.F16 => ScalarType.Float16,
        TensorDType.BF16 => ScalarType.BFloat16,
        TensorDType.F64 => ScalarType.Float64,
        TensorDType.I64 => ScalarType.Int64,
        TensorDType.I32 => ScalarType.Int32,
        TensorDType.U8 => ScalarType.Byte,
        TensorDType.I8 => ScalarType.Int8,
        TensorDType.BOOL => ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(d), d, "Unsupported tensor type."),
    };

    internal static TensorDType ToDType(ScalarType s) => s switch
    {
        ScalarType.Float32 => TensorDType.F32,
        ScalarType.Float16 => TensorDType.F16,
        ScalarType.BFloat16 => TensorDType.BF16,
        ScalarType.Float64 => TensorDType.F64,
        ScalarType.Int64 => TensorDType.I64,
        ScalarType.Int32 => TensorDType.I32,
        ScalarType.Byte => TensorDType.U8,
        ScalarType.Int8 => TensorDType.I8,
        ScalarType.Bool => TensorDType.BOOL,
        _ => throw new ArgumentOutOfRangeException(nameof(s), s, "This tensor type cannot be stored in a checkpoint."),
    };
}
