using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Json = Microsoft.ML.Beit.BeitConfigJson;

namespace Microsoft.ML.Beit;

/// <summary>
/// The configuration of a BEiT model, equal to Hugging Face's <c>BeitConfig</c> (<c>model_type = "beit"</c>).
/// Shared by the TorchSharp model, the ONNX exporter and the scorers, so shapes are defined once.
/// </summary>
/// <remarks>
/// <see cref="Load"/> reads <c>config.json</c> files written by transformers v4 and v5, including
/// <c>out_features</c>, <c>stage_names</c> and keys this class does not know (kept and written back). The JSON mapping
/// is System.Text.Json's (snake_case property names, <see cref="ExtraFields"/> as extension data) with converters as
/// strict as <see cref="UntrustedJson"/>.
/// </remarks>
public sealed class BeitConfig
{
    /// <summary>The file name Hugging Face uses for a model's configuration.</summary>
    public const string FileName = "config.json";

    /// <summary>Visual-token vocabulary size of the masked-image-modeling head.</summary>
    public int VocabSize { get; set; } = 8192;
    /// <summary>Width of the transformer (D).</summary>
    public int HiddenSize { get; set; } = 768;
    /// <summary>Number of transformer layers (L).</summary>
    public int NumHiddenLayers { get; set; } = 12;
    /// <summary>Number of attention heads; must divide <see cref="HiddenSize"/>.</summary>
    public int NumAttentionHeads { get; set; } = 12;
    /// <summary>Width of the MLP inside each layer.</summary>
    public int IntermediateSize { get; set; } = 3072;
    /// <summary>MLP activation; <c>gelu</c> is the exact erf GELU.</summary>
    [JsonConverter(typeof(Json.StringConverter))]
    public string HiddenAct { get; set; } = "gelu";
    /// <summary>Dropout after embeddings, attention output and MLP output.</summary>
    public double HiddenDropoutProb { get; set; }
    /// <summary>Dropout on attention probabilities.</summary>
    public double AttentionProbsDropoutProb { get; set; }
    /// <summary>Standard deviation of the normal initialisation.</summary>
    public double InitializerRange { get; set; } = 0.02;
    /// <summary>Epsilon of every LayerNorm (1e-12 in Hugging Face, 1e-6 in the original code).</summary>
    public double LayerNormEps { get; set; } = 1e-12;
    /// <summary>Native input resolution; fixes the shapes of position tables.</summary>
    [JsonConverter(typeof(Json.SquareIntConverter))]
    public int ImageSize { get; set; } = 224;
    /// <summary>Side of a square patch.</summary>
    [JsonConverter(typeof(Json.SquareIntConverter))]
    public int PatchSize { get; set; } = 16;
    /// <summary>Input channels.</summary>
    public int NumChannels { get; set; } = 3;
    /// <summary>Creates <c>embeddings.mask_token</c> (masked image modeling).</summary>
    public bool UseMaskToken { get; set; }
    /// <summary>Creates absolute position embeddings.</summary>
    public bool UseAbsolutePositionEmbeddings { get; set; }
    /// <summary>One relative position bias table per layer.</summary>
    public bool UseRelativePositionBias { get; set; }
    /// <summary>One relative position bias table shared by all layers.</summary>
    public bool UseSharedRelativePositionBias { get; set; }
    /// <summary>Initial value of the layer-scale parameters; 0 disables layer scale.</summary>
    public double LayerScaleInitValue { get; set; } = 0.1;
    /// <summary>Maximum stochastic-depth rate (linear over layers).</summary>
    public double DropPathRate { get; set; } = 0.1;
    /// <summary>Pool by LayerNorm(mean of patch tokens) rather than the CLS token.</summary>
    public bool UseMeanPooling { get; set; } = true;
    /// <summary>Hidden-state indices (1-based layers, 0 = embeddings) fed to the segmentation FPN.</summary>
    [JsonConverter(typeof(Json.OptionalIntArrayConverter))]
    public int[]? OutIndices { get; set; }
    /// <summary>Backbone stage names selected as outputs (v4.36+ configs).</summary>
    [JsonConverter(typeof(Json.OptionalStringArrayConverter))]
    public string[]? OutFeatures { get; set; }
    /// <summary>Backbone stage names: <c>stem, stage1..stageL</c>.</summary>
    [JsonConverter(typeof(Json.OptionalStringArrayConverter))]
    public string[]? StageNames { get; set; }
    /// <summary>Pyramid pooling scales of the UperNet head.</summary>
    [JsonConverter(typeof(Json.IntArrayConverter))]
    public int[] PoolScales { get; set; } = [1, 2, 3, 6];
    /// <summary>Adds the FCN auxiliary head to the segmentation model.</summary>
    public bool UseAuxiliaryHead { get; set; } = true;
    /// <summary>Weight of the auxiliary loss.</summary>
    public double AuxiliaryLossWeight { get; set; } = 0.4;
    /// <summary>Channels of the auxiliary head.</summary>
    public int AuxiliaryChannels { get; set; } = 256;
    /// <summary>Convolutions in the auxiliary head.</summary>
    public int AuxiliaryNumConvs { get; set; } = 1;
    /// <summary>Concatenates the input to the auxiliary head's output.</summary>
    public bool AuxiliaryConcatInput { get; set; }
    /// <summary>Label value ignored by the segmentation loss.</summary>
    public int SemanticLossIgnoreIndex { get; set; } = 255;
    /// <summary>Backbone-only option (kept for round trip).</summary>
    public bool AddFpn { get; set; }
    /// <summary>Backbone-only option (kept for round trip).</summary>
    public bool ReshapeHiddenStates { get; set; } = true;
    /// <summary>Class index to label name; empty means <c>LABEL_i</c> names for <see cref="NumLabels"/> classes.</summary>
    [JsonPropertyName("id2label"), JsonConverter(typeof(Json.Id2LabelConverter))]
    public SortedDictionary<int, string> Id2Label { get; set; } = new();
    /// <summary><c>single_label_classification</c>, <c>multi_label_classification</c>, <c>regression</c> or null.</summary>
    [JsonConverter(typeof(Json.OptionalStringConverter))]
    public string? ProblemType { get; set; }
    /// <summary>Model classes the checkpoint was saved from.</summary>
    [JsonConverter(typeof(Json.OptionalStringArrayConverter))]
    public string[]? Architectures { get; set; }

    /// <summary>Keys this class does not model, kept verbatim for round trip.</summary>
    [JsonIgnore]
    public JsonObject ExtraFields { get; private set; } = new();

    // System.Text.Json fills this with the keys no property maps; FromJsonObject moves them to ExtraFields (which
    // ToJson writes back itself), so it is null except during deserialization.
    [JsonExtensionData, JsonInclude]
    private Dictionary<string, JsonElement>? UnknownKeys { get; set; }

    // JSON-only keys: read, then resolved in FromJsonObject (num_labels, label2id) or here (segmentation_indices, an
    // older name of out_indices); model_type is checked before deserializing and always written as "beit".
    [JsonInclude, JsonPropertyName("model_type"), JsonConverter(typeof(Json.OptionalStringConverter))]
    private string ModelType { get => "beit"; set { } }

    [JsonInclude, JsonPropertyName("num_labels"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    private int NumLabelsRead { get => 0; set => _numLabelsRead = value; }

    [JsonInclude, JsonPropertyName("label2id"), JsonConverter(typeof(Json.Label2IdConverter))]
    private Dictionary<string, int>? Label2IdRead { get => null; set => _label2IdRead = value; }

    [JsonInclude, JsonPropertyName("segmentation_indices"), JsonConverter(typeof(Json.OptionalIntArrayConverter))]
    private int[]? SegmentationIndices { get => null; set { if (value != null) OutIndices = value; } }

    private int? _numLabelsRead;
    private Dictionary<string, int>? _label2IdRead;

    private int _numLabelsWithoutNames = 2;

    /// <summary>Number of output classes of the classification and segmentation heads.</summary>
    [JsonIgnore]
    public int NumLabels
    {
        get => Id2Label.Count > 0 ? Id2Label.Count : _numLabelsWithoutNames;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), "num_labels must be at least 1.");
            if (Id2Label.Count > 0 && Id2Label.Count != value)
            {
                Id2Label = new SortedDictionary<int, string>(Enumerable.Range(0, value).ToDictionary(i => i, i => $"LABEL_{i}"));
            }
            _numLabelsWithoutNames = value;
        }
    }

    /// <summary>Patch grid side at the native resolution (<c>image_size / patch_size</c>).</summary>
    [JsonIgnore]
    public int GridSize => ImageSize / PatchSize;

    /// <summary>Per-head width (<c>hidden_size / num_attention_heads</c>).</summary>
    [JsonIgnore]
    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>The label name of class <paramref name="id"/>.</summary>
    public string LabelName(int id) => Id2Label.TryGetValue(id, out var n) ? n : $"LABEL_{id}";

    /// <summary>
    /// The hidden-state indices the segmentation model taps. Resolved from <see cref="OutIndices"/>,
    /// else from <see cref="OutFeatures"/>, else the last layer.
    /// </summary>
    public int[] ResolvedOutIndices()
    {
        if (OutIndices is { Length: > 0 }) return OutIndices;
        if (OutFeatures is { Length: > 0 })
        {
            var stages = StageNames ?? DefaultStageNames();
            return OutFeatures.Select(f =>
            {
                int i = Array.IndexOf(stages, f);
                if (i < 0) throw new InvalidDataException($"BeitConfig: out_features names unknown stage '{f}'.");
                return i;
            }).ToArray();
        }
        return [NumHiddenLayers];
    }

    private string[] DefaultStageNames() =>
        ["stem", .. Enumerable.Range(1, NumHiddenLayers).Select(i => $"stage{i}")];

    /// <summary>Checks that the values describe a model that can exist; throws <see cref="InvalidDataException"/> with the reason otherwise.</summary>
    public void Validate()
    {
        void Fail(string why) => throw new InvalidDataException("BeitConfig: " + why);
        void Bound(string field, long value, long max)
        {
            if (value > max) Fail($"{field} is {value}; at most {max} is accepted (see BeitLimits in README).");
        }
        if (HiddenSize <= 0) Fail($"hidden_size must be positive (got {HiddenSize}).");
        // Architectural bounds first, so nothing below (nor any model built from this) can be asked for absurd sizes.
        Bound("hidden_size", HiddenSize, BeitLimits.MaxHiddenSize);
        Bound("num_hidden_layers", NumHiddenLayers, BeitLimits.MaxNumHiddenLayers);
        Bound("num_attention_heads", NumAttentionHeads, BeitLimits.MaxNumAttentionHeads);
        Bound("intermediate_size", IntermediateSize, BeitLimits.MaxIntermediateSize);
        Bound("image_size", ImageSize, BeitLimits.MaxImageSide);
        Bound("patch_size", PatchSize, BeitLimits.MaxImageSide);
        Bound("num_channels", NumChannels, BeitLimits.MaxNumChannels);
        Bound("num_labels", NumLabels, BeitLimits.MaxNumLabels);
        Bound("vocab_size", VocabSize, BeitLimits.MaxVocabSize);
        Bound("auxiliary_channels", AuxiliaryChannels, BeitLimits.MaxAuxiliaryChannels);
        Bound("auxiliary_num_convs", AuxiliaryNumConvs, BeitLimits.MaxSmallCount);
        Bound("pool_scales length", PoolScales.Length, BeitLimits.MaxSmallCount);
        if (PoolScales.Length > 0) Bound("pool_scales", PoolScales.Max(), BeitLimits.MaxSmallCount);
        Bound("out_indices length", OutIndices?.Length ?? 0, BeitLimits.MaxNumHiddenLayers + 1);
        Bound("out_features length", OutFeatures?.Length ?? 0, BeitLimits.MaxNumHiddenLayers + 1);
        Bound("stage_names length", StageNames?.Length ?? 0, BeitLimits.MaxNumHiddenLayers + 1);
        if (NumHiddenLayers <= 0) Fail($"num_hidden_layers must be positive (got {NumHiddenLayers}).");
        if (NumAttentionHeads <= 0) Fail($"num_attention_heads must be positive (got {NumAttentionHeads}).");
        if (HiddenSize % NumAttentionHeads != 0)
            Fail($"hidden_size ({HiddenSize}) is not a multiple of num_attention_heads ({NumAttentionHeads}).");
        if (IntermediateSize <= 0) Fail($"intermediate_size must be positive (got {IntermediateSize}).");
        if (PatchSize <= 0) Fail($"patch_size must be positive (got {PatchSize}).");
        if (ImageSize < PatchSize) Fail($"image_size ({ImageSize}) is smaller than patch_size ({PatchSize}).");
        if (NumChannels <= 0) Fail($"num_channels must be positive (got {NumChannels}).");
        if (VocabSize <= 0) Fail($"vocab_size must be positive (got {VocabSize}).");
        if (LayerNormEps <= 0) Fail($"layer_norm_eps must be positive (got {LayerNormEps}).");
        if (HiddenDropoutProb is < 0 or >= 1) Fail($"hidden_dropout_prob must be in [0,1) (got {HiddenDropoutProb}).");
        if (AttentionProbsDropoutProb is < 0 or >= 1) Fail($"attention_probs_dropout_prob must be in [0,1) (got {AttentionProbsDropoutProb}).");
        if (DropPathRate is < 0 or >= 1) Fail($"drop_path_rate must be in [0,1) (got {DropPathRate}).");
        if (LayerScaleInitValue < 0) Fail($"layer_scale_init_value must be >= 0 (got {LayerScaleInitValue}).");
        if (HiddenAct is not ("gelu" or "gelu_new" or "gelu_pytorch_tanh" or "relu" or "quick_gelu" or "silu" or "swish"))
            Fail($"hidden_act '{HiddenAct}' is not supported.");
        if (InitializerRange < 0) Fail($"initializer_range must be >= 0 (got {InitializerRange}).");
        if (PoolScales.Any(s => s <= 0)) Fail("pool_scales must all be positive.");
        if (AuxiliaryChannels <= 0) Fail($"auxiliary_channels must be positive (got {AuxiliaryChannels}).");
        if (AuxiliaryNumConvs < 0) Fail($"auxiliary_num_convs must be >= 0 (got {AuxiliaryNumConvs}).");
        if (AuxiliaryLossWeight < 0) Fail($"auxiliary_loss_weight must be >= 0 (got {AuxiliaryLossWeight}).");
        if (ProblemType is not (null or "single_label_classification" or "multi_label_classification" or "regression"))
            Fail($"problem_type '{ProblemType}' is not one of single_label_classification, multi_label_classification, regression.");
        if (OutIndices != null && OutIndices.Any(i => i < 0 || i > NumHiddenLayers))
            Fail($"out_indices [{string.Join(",", OutIndices)}] must lie in 0..{NumHiddenLayers}.");
        if (OutIndices is not { Length: > 0 } && OutFeatures is { Length: > 0 } && ResolvedOutIndices() is var fromFeatures
            && fromFeatures.Any(i => i > NumHiddenLayers))
            Fail($"out_features [{string.Join(",", OutFeatures)}] name stages [{string.Join(",", fromFeatures)}] beyond num_hidden_layers ({NumHiddenLayers}).");
        if (Id2Label.Count > 0 && !Id2Label.Keys.SequenceEqual(Enumerable.Range(0, Id2Label.Count)))
            Fail("id2label keys must be 0..num_labels-1.");
        ValidateSizes(Fail);
    }

    /// <summary>
    /// Bounds the tensors this configuration describes, from its sizes alone, in 128-bit arithmetic: each tensor stays
    /// under <see cref="BeitLimits.MaxTensorElements"/> and the whole model under <see cref="BeitLimits.MaxParameters"/>.
    /// The shapes are those of transformers' modeling_beit.py (BeitEmbeddings, BeitRelativePositionBias, BeitLayer,
    /// BeitUperHead, BeitFCNHead); the segmentation head is estimated from above.
    /// </summary>
    private void ValidateSizes(Action<string> fail)
    {
        Int128 h = HiddenSize, inter = IntermediateSize, heads = NumAttentionHeads, grid = GridSize, aux = AuxiliaryChannels;
        Int128 patches = grid * grid;
        if (patches > BeitLimits.MaxNumPatches)
            fail($"image_size {ImageSize} with patch_size {PatchSize} gives {patches} patches; at most {BeitLimits.MaxNumPatches} are accepted (see BeitLimits in README).");
        Int128 table = ((2 * grid - 1) * (2 * grid - 1) + 3) * heads;   // relative_position_bias_table
        Int128 index = (patches + 1) * (patches + 1);                   // relative_position_index
        var tensors = new (string Name, Int128 Elements)[]
        {
            ("patch_embeddings.projection.weight", h * NumChannels * PatchSize * PatchSize),
            ("position_embeddings", (patches + 1) * h),
            ("relative_position_bias_table", table),
            ("relative_position_index", index),
            ("intermediate.dense.weight", h * inter),
            ("classifier.weight", h * NumLabels),
            ("lm_head.weight", h * VocabSize),
        };
        foreach (var (name, elements) in tensors)
        {
            if (elements > BeitLimits.MaxTensorElements)
                fail($"the configuration makes {name} {elements} elements; at most {BeitLimits.MaxTensorElements} are accepted per tensor.");
        }
        Int128 bias = table + index;
        Int128 layer = 4 * (h * h + h) + 2 * h * inter + inter + h + 6 * h + (UseRelativePositionBias ? bias : 0);
        Int128 total = tensors[0].Elements + 3 * h + (UseAbsolutePositionEmbeddings ? tensors[1].Elements : 0)
            + (UseSharedRelativePositionBias ? bias : 0) + NumHiddenLayers * layer + tensors[5].Elements + tensors[6].Elements;
        if (total > BeitLimits.MaxParameters)
            fail($"the configuration describes about {total} parameters; at most {BeitLimits.MaxParameters} are accepted.");
    }

    /// <summary>
    /// Bounds the UperNet and FCN heads of the segmentation model (transformers' BeitUperHead, whose channels are
    /// <c>hidden_size</c>, and BeitFCNHead), which only that model builds: each tensor under
    /// <see cref="BeitLimits.MaxTensorElements"/> and the heads under <see cref="BeitLimits.MaxParameters"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The heads would be too large.</exception>
    internal void ValidateSegmentationHead()
    {
        Int128 h = HiddenSize, aux = AuxiliaryChannels, pools = PoolScales.Length;
        Int128 bottleneck = 9 * (1 + pools) * h * h;   // psp bottleneck: 3×3 over the input and every pooled map
        Int128 fpnBottleneck = 9 * 4 * h * h;          // 3×3 over the four concatenated FPN levels
        Int128 auxConv = 9 * h * aux;
        foreach (var (name, elements) in new[] { ("decode_head.bottleneck.conv.weight", bottleneck), ("decode_head.fpn_bottleneck.conv.weight", fpnBottleneck), ("auxiliary_head.convs.0.conv.weight", auxConv) })
        {
            if (elements > BeitLimits.MaxTensorElements)
                throw new InvalidDataException($"BeitConfig: the segmentation head makes {name} {elements} elements; at most {BeitLimits.MaxTensorElements} are accepted per tensor.");
        }
        // psp 1×1 convs, lateral 1×1 ×3, fpn 3×3 ×3, plus the bottlenecks, the auxiliary head and both classifiers.
        Int128 total = pools * h * h + 3 * h * h + 27 * h * h + bottleneck + fpnBottleneck + auxConv
            + 9 * aux * aux * Math.Max(0, AuxiliaryNumConvs - 1) + (h + aux) * NumLabels;
        if (total > BeitLimits.MaxParameters)
            throw new InvalidDataException($"BeitConfig: the segmentation head has about {total} parameters; at most {BeitLimits.MaxParameters} are accepted.");
    }

    /// <summary>Loads a configuration from a checkpoint folder, a <c>config.json</c> path or a Hugging Face model id (<see cref="Hub.BeitHub"/>).</summary>
    /// <exception cref="FileNotFoundException">No config file at that path.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid BEiT configuration.</exception>
    public static BeitConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Hub.BeitHub.LocalPath(path, Hub.BeitHubFiles.Configuration);
        string file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"BeitConfig: no {FileName} at '{path}'.", file);
        try
        {
            return FromJsonObject(UntrustedJson.ReadObjectFile(file, BeitLimits.MaxConfigFileBytes));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{e.Message} (in '{file}')", e);
        }
    }

    /// <summary>Parses the JSON text of a Hugging Face <c>config.json</c>.</summary>
    /// <exception cref="InvalidDataException">The text is not a valid BEiT configuration; the message names the field.</exception>
    public static BeitConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return FromJsonObject(UntrustedJson.ParseObject(json, FileName));
    }

    private static BeitConfig FromJsonObject(JsonObject root)
    {
        if (root["model_type"] is null && root["architecture"] is JsonNode timm)
            throw new InvalidDataException($"BeitConfig: this is timm's config.json (architecture {timm.ToJsonString()}), not Hugging Face's; " +
                                           "convert the checkpoint first (beit convert, or BeitCheckpoint.Convert).");
        if (root["model_type"] is JsonNode mt && mt.GetValueKind() == JsonValueKind.String && (string?)mt is string m && m != "beit" && m != "data2vec-vision")
            throw new InvalidDataException($"BeitConfig: model_type is '{m}', not 'beit'.");
        BeitConfig c;
        try
        {
            c = root.Deserialize<BeitConfig>(Json.Options) ?? throw new JsonException("the configuration is null");
        }
        catch (JsonException e)
        {
            string field = Json.Field(e.Path) ?? "?";
            throw Invalid(field, root[field], e.Message, e);
        }
        foreach (var (key, value) in c.UnknownKeys ?? [])
            c.ExtraFields[key] = value.ValueKind == JsonValueKind.Null ? null : JsonNode.Parse(value.GetRawText());
        c.UnknownKeys = null;
        if (c._numLabelsRead is int n && (n < 1 || n > BeitLimits.MaxNumLabels))
            throw Invalid("num_labels", root["num_labels"], $"{n} is outside [1, {BeitLimits.MaxNumLabels}]");
        if (c.Id2Label.Count == 0 && c._label2IdRead is { Count: > 0 } label2id)
        {
            var id2 = new SortedDictionary<int, string>();
            foreach (var (name, id) in label2id)
            {
                if (!id2.TryAdd(id, name))
                    throw new InvalidDataException($"BeitConfig: field 'label2id' maps both '{id2[id]}' and '{name}' to {id}.");
            }
            c.Id2Label = id2;
        }
        if (c._numLabelsRead is int count && count != c.NumLabels) c.NumLabels = count;
        c._numLabelsRead = null;
        c._label2IdRead = null;
        c.Validate();
        return c;
    }

    private static InvalidDataException Invalid(string field, JsonNode? value, string why, Exception? inner = null)
    {
        string shown = value?.ToJsonString() ?? "null";
        if (shown.Length > 80) shown = shown[..80] + "…";
        return new InvalidDataException($"BeitConfig: field '{field}' has an invalid value ({shown}): {why.TrimEnd('.')}.", inner);
    }

    /// <summary>
    /// Writes the configuration as Hugging Face's <c>config.json</c> text (sorted keys, 2-space indent). The keys
    /// transformers derives are written resolved, as it writes them: <c>stage_names</c>, <c>out_indices</c>,
    /// <c>out_features</c>, and <c>id2label</c> / <c>label2id</c> for all <see cref="NumLabels"/> classes.
    /// </summary>
    public string ToJson()
    {
        var o = JsonSerializer.SerializeToNode(this, Json.Options)!.AsObject();
        foreach (var (key, value) in ExtraFields)
        {
            if (!o.ContainsKey(key)) o[key] = value?.DeepClone();
        }
        var stages = StageNames ?? DefaultStageNames();
        var outIdx = ResolvedOutIndices();
        o["stage_names"] = new JsonArray(stages.Select(x => (JsonNode?)x).ToArray());
        o["out_indices"] = new JsonArray(outIdx.Select(x => (JsonNode?)x).ToArray());
        o["out_features"] = new JsonArray(outIdx.Select(i => (JsonNode?)(i < stages.Length ? stages[i] : $"stage{i}")).ToArray());
        var id2 = new JsonObject();
        var l2 = new JsonObject();
        for (int i = 0; i < NumLabels; i++)
        {
            id2[i.ToString(CultureInfo.InvariantCulture)] = LabelName(i);
        }
        foreach (var (name, i) in Enumerable.Range(0, NumLabels).Select(i => (LabelName(i), i)).OrderBy(t => t.Item1, StringComparer.Ordinal))
        {
            l2[name] = i;
        }
        o["id2label"] = id2;
        o["label2id"] = l2;
        var sorted = new JsonObject();
        foreach (var (k, v) in o.OrderBy(kv => kv.Key, StringComparer.Ordinal)) sorted[k] = v?.DeepClone();
        return sorted.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }) + "\n";
    }

    /// <summary>Writes <c>config.json</c> into <paramref name="folder"/> (created if needed), atomically.</summary>
    public void Save(string folder)
    {
        string json = ToJson();
        IO.AtomicFile.Write(Path.Combine(folder, FileName), tmp => File.WriteAllText(tmp, json));
    }

    /// <summary>A deep copy.</summary>
    public BeitConfig Clone() => FromJson(ToJson());
}
