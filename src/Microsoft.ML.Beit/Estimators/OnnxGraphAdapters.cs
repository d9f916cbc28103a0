using Google.Protobuf;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Post-processing of an exported (or user-supplied) BEiT ONNX graph for ML.NET's <c>ApplyOnnxModel</c>, which runs
/// one row at a time and can only feed a variable-size vector column to an input declared <c>[batch, -1]</c>:
/// the 4-D <c>pixel_values</c> input becomes a flat <c>[batch, C·H·W]</c> input reshaped inside the graph, extra
/// outputs (softmax, CLS token, patch tokens) are added, the outputs a stage reads are renamed to its fixed internal
/// column names, and everything else is pruned.
/// </summary>
internal static class OnnxGraphAdapters
{
    internal const string Batch = "batch";

    /// <summary>The static dimensions of a graph value (the batch dimension as −1), or null if the graph has no such input/output.</summary>
    public static long[]? Dims(IEnumerable<ValueInfoProto> values, string name)
    {
        var v = values.FirstOrDefault(x => x.Name == name);
        if (v?.Type?.TensorType?.Shape == null) return null;
        return v.Type.TensorType.Shape.Dim.Select(d => d.HasDimValue ? d.DimValue : -1L).ToArray();
    }

    /// <summary>
    /// Replaces input <c>pixel_values [batch, C, H, W]</c> by <see cref="BeitColumns.PixelValues"/> <c>[batch, pixels]</c>
    /// followed by <c>Reshape(−1, C, H, W)</c>, so the rest of the graph is untouched.
    /// </summary>
    public static void FlattenPixelInput(GraphProto graph, int channels, int height, int width)
    {
        int index = graph.Input.ToList().FindIndex(v => v.Name == BeitOnnxNames.PixelValues);
        if (index < 0) throw new InvalidDataException($"The graph has no '{BeitOnnxNames.PixelValues}' input.");
        graph.Input.RemoveAt(index);
        graph.Input.Insert(index, ValueInfo(BeitColumns.PixelValues, TensorProto.Types.DataType.Float, Batch, "pixels"));
        const string shapeName = "__beit_pixel_shape";
        var shape = new TensorProto { Name = shapeName, DataType = (int)TensorProto.Types.DataType.Int64 };
        shape.Dims.Add(4);
        shape.Int64Data.AddRange([-1, channels, height, width]);
        graph.Initializer.Add(shape);
        var reshape = new NodeProto { OpType = "Reshape", Name = "__beit_pixel_reshape" };
        reshape.Input.AddRange([BeitColumns.PixelValues, shapeName]);
        reshape.Output.Add(BeitOnnxNames.PixelValues);
        graph.Node.Insert(0, reshape);
    }

    /// <summary>Appends a single-output node.</summary>
    public static void AddNode(GraphProto graph, string opType, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = "__beit_" + output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
    }

    /// <summary>An int64 initializer; <paramref name="scalar"/> makes it rank 0.</summary>
    public static string AddInt64s(GraphProto graph, string name, long[] values, bool scalar = false)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        if (!scalar) t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        graph.Initializer.Add(t);
        return name;
    }

    public static AttributeProto IntAttribute(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>
    /// Makes the graph's outputs exactly <paramref name="outputs"/>: each graph value is renamed to its new name and
    /// declared float32 with the given dimensions (−1 = the batch). Then prunes nodes and initializers no output needs.
    /// </summary>
    public static void SetOutputs(GraphProto graph, IReadOnlyList<(string Value, string Name, long[] Dims)> outputs)
    {
        graph.Output.Clear();
        foreach (var (value, name, dims) in outputs)
        {
            Rename(graph, value, name);
            graph.Output.Add(ValueInfo(name, TensorProto.Types.DataType.Float, dims.Select(d => d < 0 ? (object)Batch : d).ToArray()));
        }
        Prune(graph);
    }

    internal static void Rename(GraphProto graph, string from, string to)
    {
        if (from == to) return;
        foreach (var node in graph.Node)
        {
            for (int i = 0; i < node.Output.Count; i++) if (node.Output[i] == from) node.Output[i] = to;
            for (int i = 0; i < node.Input.Count; i++) if (node.Input[i] == from) node.Input[i] = to;
        }
    }

    /// <summary>Keeps only the nodes the outputs depend on (in their original, topological order) and the initializers they read.</summary>
    private static void Prune(GraphProto graph)
    {
        var needed = new HashSet<string>(graph.Output.Select(o => o.Name), StringComparer.Ordinal);
        var keep = new bool[graph.Node.Count];
        for (int i = graph.Node.Count - 1; i >= 0; i--)
        {
            var node = graph.Node[i];
            if (!node.Output.Any(needed.Contains)) continue;
            keep[i] = true;
            foreach (var input in node.Input) if (input.Length > 0) needed.Add(input);
            // Subgraph attributes (If/Loop) may read outer values by name: keep everything they could mention.
            foreach (var a in node.Attribute)
                if (a.G != null || a.Graphs.Count > 0) return;
        }
        var nodes = graph.Node.Where((_, i) => keep[i]).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        var initializers = graph.Initializer.Where(t => needed.Contains(t.Name)).ToList();
        graph.Initializer.Clear();
        graph.Initializer.AddRange(initializers);
        var infos = graph.ValueInfo.Where(v => needed.Contains(v.Name)).ToList();
        graph.ValueInfo.Clear();
        graph.ValueInfo.AddRange(infos);
    }

    internal static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s }
                                        : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    /// <summary>The opset version the model imports for the default domain (0 when absent).</summary>
    public static long DefaultOpset(ModelProto model) =>
        model.OpsetImport.Where(o => string.IsNullOrEmpty(o.Domain)).Select(o => o.Version).DefaultIfEmpty(0).Max();

    /// <summary>Parses ONNX bytes; a clear error names the source when they are not a model.</summary>
    public static ModelProto Parse(byte[] bytes, string source)
    {
        try
        {
            var model = ModelProto.Parser.ParseFrom(bytes);
            if (model.Graph == null) throw new InvalidDataException("no graph.");
            return model;
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{source}' is not an ONNX model: {e.Message}", e);
        }
        catch (InvalidDataException e) when (e.InnerException == null)
        {
            throw new InvalidDataException($"'{source}' is not an ONNX model: {e.Message}", e);
        }
    }
}
