using Google.Protobuf;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// Turns a float32 graph into a float16 one for ONNX Runtime's CUDA provider: every float32 initializer becomes float16,
/// every <c>Cast</c> to float32 casts to float16, and a Cast at each float32 graph input and output keeps the graph's
/// interface float32, so callers (and the ML.NET stages) feed and read the same tensors as before.
/// </summary>
/// <remarks>
/// The operators that need wider arithmetic get it inside their float16 kernels: <c>LayerNormalization</c> and
/// <c>SkipLayerNormalization</c> keep mean and variance in float32 (opset 17's <c>stash_type</c> = 1 is the default),
/// and ONNX Runtime's CUDA softmax and attention kernels accumulate in float32.
/// </remarks>
internal static class OnnxFloat16Converter
{
    // float16's largest finite value.
    private const float MaxHalf = 65504f;

    public static void Convert(GraphProto graph)
    {
        foreach (var t in graph.Initializer)
        {
            if (t.DataType != (int)TensorProto.Types.DataType.Float) continue;
            var src = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span);
            var half = new Half[src.Length];
            for (int i = 0; i < src.Length; i++)
            {
                // A weight beyond float16's range would become infinity and poison every output; refuse instead.
                if (Math.Abs(src[i]) > MaxHalf)
                    throw new NotSupportedException($"Initializer '{t.Name}' holds {src[i]}, beyond float16's range (±{MaxHalf}); export as Float32.");
                half[i] = (Half)src[i];
            }
            t.DataType = (int)TensorProto.Types.DataType.Float16;
            t.RawData = UnsafeByteOperations.UnsafeWrap(System.Runtime.InteropServices.MemoryMarshal.AsBytes(half.AsSpan()).ToArray());
        }
        foreach (var node in graph.Node)
        {
            if (node.OpType != "Cast" || node.Domain.Length != 0) continue;
            foreach (var a in node.Attribute)
                if (a.Name == "to" && a.I == (long)TensorProto.Types.DataType.Float) a.I = (long)TensorProto.Types.DataType.Float16;
        }

        var casts = new List<NodeProto>();
        foreach (var input in graph.Input)
        {
            if (input.Type.TensorType.ElemType != (int)TensorProto.Types.DataType.Float) continue;
            string half = input.Name + ".float16";
            foreach (var node in graph.Node)
                for (int i = 0; i < node.Input.Count; i++)
                    if (node.Input[i] == input.Name) node.Input[i] = half;
            casts.Add(Cast(input.Name, half, TensorProto.Types.DataType.Float16));
        }
        for (int i = casts.Count - 1; i >= 0; i--) graph.Node.Insert(0, casts[i]);

        foreach (var output in graph.Output)
        {
            if (output.Type.TensorType.ElemType != (int)TensorProto.Types.DataType.Float) continue;
            string half = output.Name + ".float16";
            foreach (var node in graph.Node)
            {
                for (int i = 0; i < node.Output.Count; i++)
                    if (node.Output[i] == output.Name) node.Output[i] = half;
                for (int i = 0; i < node.Input.Count; i++)
                    if (node.Input[i] == output.Name) node.Input[i] = half;
            }
            graph.Node.Add(Cast(half, output.Name, TensorProto.Types.DataType.Float));
        }
    }

    private static NodeProto Cast(string from, string to, TensorProto.Types.DataType type)
    {
        var node = new NodeProto { OpType = "Cast", Name = to + ".Cast", Input = { from }, Output = { to } };
        node.Attribute.Add(OnnxGraphBuilder.Int("to", (long)type));
        return node;
    }
}
