using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.BeitFeaturizer</c>: pixel values → <c>Features</c>, the pooled embedding
/// (<c>BeitModel</c>'s <c>pooler_output</c>: the layer-normed mean of the patch tokens, or the final CLS token for
/// models without mean pooling), and optionally the CLS token and the patch tokens of the last layer.
/// </summary>
public sealed class BeitFeaturizerEstimator : BeitModelStageEstimator<BeitFeaturizerTransformer>
{
    internal const string StageName = "BeitFeaturizer";

    private readonly Options _options;

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
        : base(catalog, options, options?.Model, options?.InputColumnName!, [options?.OutputColumnName!],
               StageName, BeitOnnxTask.Features, (graph, outputs) => Adapt(options!, graph, outputs))
    {
        _options = options!;
    }

    private static BeitStageConfig Adapt(Options options, BeitScoringGraph graph, List<(string, string, long[])> outputs)
    {
        const BeitOnnxTask task = BeitOnnxTask.Features;
        var g = graph.Model.Graph;
        long hidden = graph.RequireOutput(BeitOnnxNames.PoolerOutput, 2, StageName, task)[1];
        outputs.Add((BeitOnnxNames.PoolerOutput, BeitColumns.Pooled, [-1, hidden]));
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
        return new BeitStageConfig
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
    public int FeatureSize => Config.HiddenSize;

    private protected override (string, string)[] Outputs()
    {
        var outputs = new List<(string, string)> { (_options.OutputColumnName, BeitColumns.Pooled) };
        if (_options.ClsTokenColumnName != null) outputs.Add((_options.ClsTokenColumnName, BeitColumns.ClsToken));
        if (_options.PatchTokensColumnName != null) outputs.Add((_options.PatchTokensColumnName, BeitColumns.PatchTokens));
        return [.. outputs];
    }

    private protected override BeitFeaturizerTransformer Create(TransformerChain<ITransformer> chain, OwnedTempFile modelFile) =>
        new(chain, Config, modelFile);
}

/// <summary>The fitted <see cref="BeitFeaturizerEstimator"/>: an ONNX Runtime session over the backbone.</summary>
public sealed class BeitFeaturizerTransformer : BeitModelStageTransformer
{
    internal BeitFeaturizerTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The pooled-embedding column.</summary>
    public string OutputColumnName => StageConfig.Output;

    /// <summary>The embedding width (<c>hidden_size</c>).</summary>
    public int FeatureSize => StageConfig.HiddenSize;

    /// <summary>The typed view of the <c>BeitFeaturizer</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static BeitFeaturizerTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.Featurizer, (chain, config) => new BeitFeaturizerTransformer(chain, config, null));
    }
}
