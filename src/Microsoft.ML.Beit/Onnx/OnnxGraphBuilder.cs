using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// Builds an ONNX <see cref="GraphProto"/> node by node: unique value names, initializers stored as raw little-endian
/// bytes (wrapped, not copied), typed attributes. Knows nothing about BEiT.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    public const string MicrosoftDomain = "com.microsoft";

    private readonly GraphProto _graph = new() { Name = "beit" };
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _nodeCounts = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, long), string> _scalarCache = new();

    public GraphProto Graph => _graph;

    /// <summary>True once any node uses the <c>com.microsoft</c> domain.</summary>
    public bool UsesMicrosoftDomain { get; private set; }

    private string Unique(string name)
    {
        if (_names.Add(name)) return name;
        for (int i = 1; ; i++)
        {
            var candidate = $"{name}_{i}";
            if (_names.Add(candidate)) return candidate;
        }
    }

    // ---- initializers -------------------------------------------------------------------------------------------

    public string Initializer(string name, float[] values, params long[] dims) =>
        Raw(name, TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), values.LongLength, dims);

    public string Initializer(string name, long[] values, params long[] dims) =>
        Raw(name, TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), values.LongLength, dims);

    /// <summary>An int8 initializer (quantized weights).</summary>
    public string Initializer(string name, sbyte[] values, params long[] dims) =>
        Raw(name, TensorProto.Types.DataType.Int8, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), values.LongLength, dims);

    /// <summary>An int64 vector constant, e.g. a Reshape target.</summary>
    public string Int64s(string name, params long[] values) => Initializer(name, values, values.Length);

    /// <summary>A float scalar constant (rank 0), shared between uses.</summary>
    public string Scalar(float value)
    {
        var key = ("f", (long)BitConverter.SingleToInt32Bits(value));
        if (_scalarCache.TryGetValue(key, out var n)) return n;
        n = Initializer($"const_{value:R}".Replace('-', 'm'), [value]);
        _scalarCache[key] = n;
        return n;
    }

    private string Raw(string name, TensorProto.Types.DataType type, byte[] bytes, long count, long[] dims)
    {
        long expected = 1;
        foreach (var d in dims) expected *= d;
        if (expected != count)
            throw new InvalidOperationException($"Initializer '{name}' has {count} values but shape [{string.Join(",", dims)}].");
        var t = new TensorProto { Name = Unique(name), DataType = (int)type, RawData = UnsafeByteOperations.UnsafeWrap(bytes) };
        t.Dims.AddRange(dims);
        _graph.Initializer.Add(t);
        return t.Name;
    }

    // ---- nodes --------------------------------------------------------------------------------------------------

    /// <summary>Adds a node and returns its output names (<c>""</c> inputs mark omitted optional inputs).</summary>
    public string[] Node(string opType, string name, IReadOnlyList<string> inputs, int outputs, string domain = "", params AttributeProto[] attributes)
    {
        string nodeName = Unique(name);
        var node = new NodeProto { OpType = opType, Name = nodeName };
        if (domain.Length > 0)
        {
            node.Domain = domain;
            if (domain == MicrosoftDomain) UsesMicrosoftDomain = true;
        }
        node.Input.AddRange(inputs);
        var outs = new string[outputs];
        for (int i = 0; i < outputs; i++) outs[i] = Unique(outputs == 1 ? nodeName : $"{nodeName}:{i}");
        node.Output.AddRange(outs);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return outs;
    }

    /// <summary>
    /// Adds a node whose optional outputs are requested selectively: unwanted outputs are left unnamed
    /// (<c>""</c>, trailing ones dropped); the result holds null for them.
    /// </summary>
    public string?[] Node(string opType, string name, IReadOnlyList<string> inputs, bool[] wanted, string domain = "", params AttributeProto[] attributes)
    {
        var outs = Node(opType, name, inputs, wanted.Length, domain, attributes);
        var node = _graph.Node[^1];
        int last = Array.LastIndexOf(wanted, true);
        var result = new string?[wanted.Length];
        for (int i = wanted.Length - 1; i >= 0; i--)
        {
            if (wanted[i]) { result[i] = outs[i]; continue; }
            _names.Remove(outs[i]);
            if (i > last) node.Output.RemoveAt(i);
            else node.Output[i] = "";
        }
        return result;
    }

    /// <summary>Adds a single-output node and returns its output name.</summary>
    public string Op(string opType, string name, params string[] inputs) => Node(opType, name, inputs, 1)[0];

    /// <summary>Adds a single-output node with attributes.</summary>
    public string Op(string opType, string name, string[] inputs, params AttributeProto[] attributes) =>
        Node(opType, name, inputs, 1, "", attributes)[0];

    /// <summary>Adds a single-output <c>com.microsoft</c> node.</summary>
    public string MsOp(string opType, string name, string[] inputs, params AttributeProto[] attributes) =>
        Node(opType, name, inputs, 1, MicrosoftDomain, attributes)[0];

    /// <summary>Renames the output of the last node that produced <paramref name="value"/> (used for graph outputs).</summary>
    public string Rename(string value, string newName)
    {
        if (value == newName) return value;
        if (!_names.Add(newName)) throw new InvalidOperationException($"Value name '{newName}' is already used.");
        foreach (var node in _graph.Node)
        {
            for (int i = 0; i < node.Output.Count; i++)
                if (node.Output[i] == value) node.Output[i] = newName;
            for (int i = 0; i < node.Input.Count; i++)
                if (node.Input[i] == value) node.Input[i] = newName;
        }
        return newName;
    }

    // ---- graph inputs and outputs -------------------------------------------------------------------------------

    /// <summary>Declares a graph input; each dimension is a <c>long</c> (fixed) or a <c>string</c> (symbolic).</summary>
    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"Value name '{name}' is already used.");
        _graph.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares a graph output.</summary>
    public void Output(string name, TensorProto.Types.DataType type, params object[] dims) =>
        _graph.Output.Add(ValueInfo(name, type, dims));

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                int i => new TensorShapeProto.Types.Dimension { DimValue = i },
                long l => new TensorShapeProto.Types.Dimension { DimValue = l },
                _ => throw new ArgumentException($"Dimension '{d}' is neither a number nor a name."),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    // ---- attributes ---------------------------------------------------------------------------------------------

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Str(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
