using Google.Protobuf;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Beit.Tests.Onnx;

/// <summary>Hand-made ONNX graphs for negative tests.</summary>
internal static class TinyGraphs
{
    /// <summary>A valid one-node graph whose input is not <c>pixel_values</c>.</summary>
    public static byte[] Identity()
    {
        static ValueInfoProto Info(string name) => new()
        {
            Name = name,
            Type = new TypeProto
            {
                TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimValue = 2 } } } },
            },
        };
        var graph = new GraphProto { Name = "g", Input = { Info("x") }, Output = { Info("y") } };
        graph.Node.Add(new NodeProto { OpType = "Identity", Input = { "x" }, Output = { "y" } });
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }
}
