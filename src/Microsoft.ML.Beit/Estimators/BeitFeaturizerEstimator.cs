using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.BeitFeaturizer</c>: pixel values → <c>Features</c>, the pooled embedding
/// (<c>BeitModel</c>'s <c>pooler_output</c>: the layer-normed mean of the patch tokens, or the final CLS token for
/// models without mean pooling), and optionally the CLS token and the patch tokens of the last layer.
/// </summary>
public sealed class BeitFeaturizerEstimator : IEstimator<BeitFeaturizerTransformer>
{
    internal const string StageName = "BeitFeaturizer";

    private readonly TransformsCatalog _catalog;
    private readonly Options _options;
    private readonly BeitStageConfig _config;
    private readonly byte[] _onnx;
    private readonly string[] _onnxOutputs;

    /// <summary>Options of <see cref="BeitFeaturizerEstimator"/>.</summary>
    public sealed class Options : BeitOnnxStageOptions
    {
        /// <summary>The model: a checkpoint folder (any BEiT head; the backbone and pooler are used), an ONNX features export, or tensors (required).</summary>
        public BeitModelSource? Model { get; set; }

        /// <summary>The pixel-values column (default <c>PixelValues</c>).</summary>
        public string InputColumnName { get; set; } = "PixelValues";

        /// <summary>The pooled-embedding column (default <c>Features</c>), <c>hidden_size</c> floats.</summary>
        public string OutputColumnName { get; set; } = "Features";

        /// <summary>Also output the last layer's CLS token (<c>last_hidden_state[:, 0]</c>, <c>hidden_size</c> floats) to this column.</summary>
        public string? ClsTokenColumnName { get; set; }

        /// <summary>Also output the last layer's patch tokens (<c>last_hidden_state[:, 1:]</c>, <c>[num_patches, hidden_size]</c> row-major) to this column.</summary>
        public string? PatchTokensColumnName { get; set; }
    }

    internal BeitFeaturizerEstimator(TransformsCatalog catalog, Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Model == null) throw new ArgumentException($"{StageName}: Options.Model is required.", nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.OutputColumnName);
        _catalog = catalog;
        _options = options;

        const BeitOnnxTask task = BeitOnnxTask.Features;
        var graph = options.Model.Load(task, StageName, options);
        var g = graph.Model.Graph;
        long hidden = graph.RequireOutput(BeitOnnxNames.PoolerOutput, 2, StageName, task)[1];
        var outputs = new List<(string, string, long[])> { (BeitOnnxNames.PoolerOutput, BeitColumns.Pooled, [-1, hidden]) };
        long tokens = 0;
        if (options.ClsTokenColumnName != null || options.PatchTokensColumnName != null)
        {
            var sequence = graph.RequireOutput(BeitOnnxNames.LastHiddenState, 3, StageName, task);
            tokens = sequence[1];
            if (sequence[2] != hidden) throw new InvalidDataException($"{StageName}: '{graph.Source}' has last_hidden_state width {sequence[2]} but pooler_output width {hidden}.");
        }
        if (options.ClsTokenColumnName != null)
        {
            var index = OnnxGraphAdapters.AddInt64s(g, "__beit_cls_index", [0], scalar: true);
            OnnxGraphAdapters.AddNode(g, "Gather", [BeitOnnxNames.LastHiddenState, index], "__beit_cls", OnnxGraphAdapters.IntAttribute("axis", 1));
            outputs.Add(("__beit_cls", BeitColumns.ClsToken, [-1, hidden]));
        }
        if (options.PatchTokensColumnName != null)
        {
            var starts = OnnxGraphAdapters.AddInt64s(g, "__beit_patch_starts", [1]);
            var ends = OnnxGraphAdapters.AddInt64s(g, "__beit_patch_ends", [tokens]);
            var axes = OnnxGraphAdapters.AddInt64s(g, "__beit_patch_axes", [1]);
            OnnxGraphAdapters.AddNode(g, "Slice", [BeitOnnxNames.LastHiddenState, starts, ends, axes], "__beit_patches");
            outputs.Add(("__beit_patches", BeitColumns.PatchTokens, [-1, tokens - 1, hidden]));
        }
        OnnxGraphAdapters.FlattenPixelInput(g, graph.Channels, graph.Height, graph.Width);
        OnnxGraphAdapters.SetOutputs(g, outputs);
        _onnx = graph.ToBytes();
        _onnxOutputs = outputs.Select(o => o.Item2).ToArray();
        _config = new BeitStageConfig
        {
            Stage = BeitStages.Featurizer,
            Column = options.InputColumnName,
            Output = options.OutputColumnName,
            Channels = graph.Channels,
            Height = graph.Height,
            Width = graph.Width,
            HiddenSize = (int)hidden,
            NumPatches = tokens > 0 ? (int)tokens - 1 : 0,
        };
    }

    /// <summary>The embedding width (<c>hidden_size</c>).</summary>
    public int FeatureSize => _config.HiddenSize;

    /// <summary>The graph the stage runs (flattened input, pooled output), for <see cref="Scoring.BeitBatchScorer"/>.</summary>
    internal byte[] OnnxModel => _onnx;

    /// <summary>The stage configuration (input size, hidden size).</summary>
    internal BeitStageConfig StageConfig => _config;

    /// <summary>Creates the ONNX Runtime session and the stage's chain.</summary>
    public BeitFeaturizerTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = BeitSchemaChecks.Require(input.Schema, _options.InputColumnName, StageName, BeitSchemaChecks.IsFloatVector, BeitClassifierEstimator.ExpectedInput);
        BeitSchemaChecks.CheckPixelCount(column, _config.InputLength, StageName);
        return BeitStageBuilder.FitModelStage(_catalog, input, _config, _onnx, _onnxOutputs, _options, null, null,
            Outputs(), (chain, file) => new BeitFeaturizerTransformer(chain, _config, file));
    }

    private (string, string)[] Outputs()
    {
        var outputs = new List<(string, string)> { (_options.OutputColumnName, BeitColumns.Pooled) };
        if (_options.ClsTokenColumnName != null) outputs.Add((_options.ClsTokenColumnName, BeitColumns.ClsToken));
        if (_options.PatchTokensColumnName != null) outputs.Add((_options.PatchTokensColumnName, BeitColumns.PatchTokens));
        return [.. outputs];
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        BeitSchemaChecks.Require(inputSchema, _options.InputColumnName, StageName, BeitSchemaChecks.IsFloatVector, BeitClassifierEstimator.ExpectedInput);
        return SchemaShapeShim.OutputShape(_catalog, inputSchema, Outputs());
    }
}

/// <summary>The fitted <see cref="BeitFeaturizerEstimator"/>: an ONNX Runtime session over the backbone.</summary>
public sealed class BeitFeaturizerTransformer : BeitTransformerBase
{
    internal BeitFeaturizerTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The pixel-values column.</summary>
    public string InputColumnName => StageConfig.Column;

    /// <summary>The pooled-embedding column.</summary>
    public string OutputColumnName => StageConfig.Output;

    /// <summary>The embedding width (<c>hidden_size</c>).</summary>
    public int FeatureSize => StageConfig.HiddenSize;

    /// <summary>The model's input height in pixels.</summary>
    public int ImageHeight => StageConfig.Height;

    /// <summary>The model's input width in pixels.</summary>
    public int ImageWidth => StageConfig.Width;

    /// <summary>The typed view of the <c>BeitFeaturizer</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static BeitFeaturizerTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.Featurizer, (chain, config) => new BeitFeaturizerTransformer(chain, config, null));
    }
}
