using System.Globalization;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// Adds Hugging Face's <c>output_attentions</c> to a graph written by <see cref="BeitOnnxExporter"/>: one extra float32
/// output <c>attentions.{layer}</c> of shape <c>[batch, heads, tokens, tokens]</c> per encoder layer, the softmax of
/// <c>QKᵀ/√dh + relative position bias</c>, exactly what <c>BeitSelfAttention</c> returns as <c>attention_probs</c>.
/// </summary>
/// <remarks>
/// ONNX Runtime's fused <c>com.microsoft.Attention</c> and <c>MultiHeadAttention</c> operators never expose their
/// probabilities, so each one is replaced by the same computation in standard operators (the weights and the bias are
/// the graph's own initializers; nothing else changes). Graphs that already use standard attention get an
/// <c>Identity</c> per layer. This works on any float32 or int8 graph the exporter wrote, including the ONNX model
/// inside a <c>model.zip</c> saved by <c>beit package</c>: that is how <c>beit explain</c> sees a packaged model's attention.
/// </remarks>
internal static partial class BeitOnnxAttention
{
    /// <summary>The output name of layer <paramref name="layer"/>'s attention probabilities (0-based, as Hugging Face's <c>attentions[layer]</c>).</summary>
    public static string OutputName(int layer) => $"attentions.{layer.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Returns <paramref name="onnxModel"/> with an <c>attentions.{l}</c> output per encoder layer (see the type's remarks).</summary>
    /// <exception cref="InvalidDataException">The bytes are not an ONNX model written by this library's exporter, or it has no attention layers.</exception>
    /// <exception cref="NotSupportedException">The graph is float16 (exposing attention there is not supported).</exception>
    public static byte[] AddOutputs(byte[] onnxModel)
    {
        ArgumentNullException.ThrowIfNull(onnxModel);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(onnxModel);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"Not an ONNX model: {e.Message}", e);
        }
        AddOutputs(model);
        return model.ToByteArray();
    }

    /// <summary>Adds the outputs to <paramref name="model"/> in place; returns how many layers were exposed.</summary>
    internal static int AddOutputs(ModelProto model)
    {
        var meta = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        if (!meta.TryGetValue(BeitOnnxNames.MetadataConfig, out var configJson) || !meta.TryGetValue(BeitOnnxNames.MetadataImageSize, out var size))
            throw new InvalidDataException($"The ONNX model has no '{BeitOnnxNames.MetadataConfig}' and '{BeitOnnxNames.MetadataImageSize}' metadata: " +
                "attention maps need a graph exported by Microsoft.ML.Beit (BeitOnnxExporter or 'beit export-onnx' / 'beit package' from a checkpoint).");
        if (meta.TryGetValue(BeitOnnxNames.MetadataPrecision, out var precision) && precision == nameof(BeitOnnxPrecision.Float16))
            throw new NotSupportedException("Attention outputs are not supported on Float16 graphs; export with Precision Float32 or Int8.");
        var config = BeitConfig.FromJson(configJson);
        var (height, width) = ParseSize(size);
        if (height % config.PatchSize != 0 || width % config.PatchSize != 0)
            throw new InvalidDataException($"The graph's image size {size} is not a multiple of its patch size {config.PatchSize}.");
        int heads = config.NumAttentionHeads, headDim = config.HeadDim, hidden = config.HiddenSize;
        long tokens = checked((long)(height / config.PatchSize) * (width / config.PatchSize) + 1);

        var graph = model.Graph;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in graph.Node) names.UnionWith(n.Output);
        names.UnionWith(graph.Initializer.Select(i => i.Name));
        names.UnionWith(graph.Input.Select(i => i.Name));
        names.UnionWith(graph.Output.Select(o => o.Name));

        var nodes = new List<NodeProto>(graph.Node.Count + 16);
        var exposed = new SortedDictionary<int, string>();
        string? headShape = null, mergedShape = null, split = null;
        foreach (var node in graph.Node)
        {
            var m = LayerName().Match(node.Name);
            if (!m.Success)
            {
                nodes.Add(node);
                continue;
            }
            int layer = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            string suffix = m.Groups[2].Value;
            if (suffix == ".softmax" && node.OpType == "Softmax" && node.Domain.Length == 0)
            {
                // Standard attention: the probabilities are already a value; name a copy of it.
                nodes.Add(node);
                nodes.Add(NewNode("Identity", $"{Prefix(layer)}identity", [node.Output[0]], Expose(layer)));
                continue;
            }
            if (suffix.Length == 0 && node.Domain == OnnxGraphBuilder.MicrosoftDomain && node.OpType is "Attention" or "MultiHeadAttention")
            {
                headShape ??= Int64s("beit.attentions.head_shape", 0, 0, heads, headDim);
                mergedShape ??= Int64s("beit.attentions.merged_shape", 0, 0, hidden);
                string p = Prefix(layer);
                string q, k, v;
                string? bias = node.Input.Count > 5 && node.Input[5].Length > 0 ? node.Input[5] : null;
                if (node.OpType == "Attention")
                {
                    // Inputs: x [B,T,D], W [D,3D], b [3D], mask, past, attention_bias. The exporter wrote scale = 1
                    // (1/√dh is folded into the query weights), so the standard form below uses no scale either.
                    split ??= Int64s("beit.attentions.qkv_split", hidden, hidden, hidden);
                    var mm = Value(p + "qkv_matmul");
                    nodes.Add(NewNode("MatMul", p + "qkv_matmul", [node.Input[0], node.Input[1]], mm));
                    var qkv = Value(p + "qkv");
                    nodes.Add(NewNode("Add", p + "qkv_add", [mm, node.Input[2]], qkv));
                    q = Value(p + "q"); k = Value(p + "k"); v = Value(p + "v");
                    var s = NewNode("Split", p + "split", [qkv, split], q, k, v);
                    s.Attribute.Add(OnnxGraphBuilder.Int("axis", -1));
                    nodes.Add(s);
                }
                else
                {
                    q = node.Input[0]; k = node.Input[1]; v = node.Input[2];
                }
                foreach (var a in node.Attribute)
                {
                    if (a.Name == "scale" && a.F != 1f)
                        throw new InvalidDataException($"Node '{node.Name}' scales by {a.F}; graphs from this library's exporter use scale 1.");
                    if (a.Name == "num_heads" && a.I != heads)
                        throw new InvalidDataException($"Node '{node.Name}' has {a.I} heads but the graph's configuration says {heads}.");
                }
                var qh = Heads(p + "q", q, [0, 2, 1, 3]);
                var kT = Heads(p + "k", k, [0, 2, 3, 1]);
                var vh = Heads(p + "v", v, [0, 2, 1, 3]);
                var scores = Value(p + "scores");
                nodes.Add(NewNode("MatMul", p + "scores", [qh, kT], scores));
                if (bias != null)
                {
                    var biased = Value(p + "scores_bias");
                    nodes.Add(NewNode("Add", p + "scores_bias", [scores, bias], biased));
                    scores = biased;
                }
                var probs = Expose(layer);
                var softmax = NewNode("Softmax", p + "softmax", [scores], probs);
                softmax.Attribute.Add(OnnxGraphBuilder.Int("axis", -1));
                nodes.Add(softmax);
                var context = Value(p + "context");
                nodes.Add(NewNode("MatMul", p + "context", [probs, vh], context));
                var ct = Value(p + "context_transpose");
                var t = NewNode("Transpose", p + "context_transpose", [context], ct);
                t.Attribute.Add(OnnxGraphBuilder.Ints("perm", 0, 2, 1, 3));
                nodes.Add(t);
                // The replaced node's output name stays, so its consumers are untouched.
                nodes.Add(NewNode("Reshape", p + "merge", [ct, mergedShape], node.Output[0]));
                continue;
            }
            nodes.Add(node);
        }
        if (exposed.Count == 0)
            throw new InvalidDataException("The ONNX model has no attention layers named as this library's exporter names them.");
        if (exposed.Keys.First() != 0 || exposed.Keys.Last() != exposed.Count - 1)
            throw new InvalidDataException($"The graph's attention layers are not numbered 0..{exposed.Count - 1}.");

        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        foreach (var (_, name) in exposed)
            graph.Output.Add(FloatOutput(name, BeitExportContext.Batch, heads, tokens, tokens));
        return exposed.Count;

        string Expose(int layer)
        {
            string name = OutputName(layer);
            if (exposed.ContainsKey(layer) || !names.Add(name))
                throw new InvalidDataException($"The graph already has a value named '{name}', or layer {layer} twice: are attentions already exposed?");
            exposed[layer] = name;
            return name;
        }

        string Value(string name) => names.Add(name) ? name : throw new InvalidDataException($"The graph already has a value named '{name}'.");

        string Int64s(string name, params long[] values)
        {
            var t = new TensorProto { Name = Value(name), DataType = (int)TensorProto.Types.DataType.Int64 };
            t.Dims.Add(values.Length);
            t.RawData = ByteString.CopyFrom(values.SelectMany(BitConverter.GetBytes).ToArray());
            graph.Initializer.Add(t);
            return t.Name;
        }

        // [B, T, D] → [B, nH, T, dh] (or [B, nH, dh, T] for the keys).
        string Heads(string name, string x, long[] perm)
        {
            var r = Value(name + "_reshape");
            nodes.Add(NewNode("Reshape", name + "_reshape", [x, headShape!], r));
            var o = Value(name + "_heads");
            var tr = NewNode("Transpose", name + "_heads", [r], o);
            tr.Attribute.Add(OnnxGraphBuilder.Ints("perm", perm));
            nodes.Add(tr);
            return o;
        }
    }

    private static string Prefix(int layer) => $"beit.attentions.{layer.ToString(CultureInfo.InvariantCulture)}.";

    private static NodeProto NewNode(string op, string name, string[] inputs, params string[] outputs)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        return n;
    }

    private static ValueInfoProto FloatOutput(string name, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, CultureInfo.InvariantCulture) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private static (int Height, int Width) ParseSize(string size)
    {
        var parts = size.Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int h) &&
            int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int w) && h > 0 && w > 0 && h <= 1 << 16 && w <= 1 << 16)
            return (h, w);
        throw new InvalidDataException($"The graph's '{BeitOnnxNames.MetadataImageSize}' metadata '{size}' is not HxW.");
    }

    // "beit.encoder.layer.{l}.attention.attention" (fused node) or "…attention.attention.softmax" (standard Softmax).
    [GeneratedRegex(@"^beit\.encoder\.layer\.(\d{1,4})\.attention\.attention(\.softmax)?$", RegexOptions.CultureInvariant)]
    private static partial Regex LayerName();
}
