using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.BeitSegmenter</c>: pixel values → a per-pixel class map at each image's original size
/// (Hugging Face's <c>post_process_semantic_segmentation</c> with the original sizes as targets: the UperNet logits
/// upsampled bilinearly, then arg-max), its <c>[height, width]</c>, and optionally the class probabilities at the
/// logits' resolution. Evaluate with <c>mlContext.MulticlassClassification.EvaluateBeitSegmentation</c>.
/// </summary>
public sealed class BeitSegmenterEstimator : BeitModelStageEstimator<BeitSegmenterTransformer>
{
    internal const string StageName = "BeitSegmenter";

    private readonly Options _options;

    /// <summary>Options of <see cref="BeitSegmenterEstimator"/>.</summary>
    public sealed class Options : BeitOnnxStageOptions
    {
        /// <summary>The model: a <c>BeitForSemanticSegmentation</c> checkpoint folder, an ONNX segmentation export, or tensors (required).</summary>
        public BeitModelSource? Model { get; set; }

        /// <summary>The pixel-values column (default <c>PixelValues</c>).</summary>
        public string InputColumnName { get; set; } = "PixelValues";

        /// <summary>
        /// The decoded-image column whose size is each row's target size (default <c>Image</c>, the output of
        /// <c>LoadBeitImages</c>). Null: the map has the model's input size.
        /// </summary>
        public string? ImageColumnName { get; set; } = "Image";

        /// <summary>The class-map column (default <c>PredictedLabel</c>): one Int32 class index per pixel, row-major.</summary>
        public string OutputColumnName { get; set; } = "PredictedLabel";

        /// <summary>The map's <c>[height, width]</c> column (default <c>PredictedLabelSize</c>).</summary>
        public string SizeColumnName { get; set; } = "PredictedLabelSize";

        /// <summary>
        /// Also output class probabilities (softmax over classes of the logits, <c>[num_labels, h, w]</c> row-major at
        /// the logits' resolution, a quarter of the input's for patch 16) to this column.
        /// </summary>
        public string? ScoreColumnName { get; set; }
    }

    internal BeitSegmenterEstimator(TransformsCatalog catalog, Options options)
        : base(catalog, options, options?.Model, options?.InputColumnName!, [options?.OutputColumnName!, options?.SizeColumnName!],
               StageName, BeitOnnxTask.SemanticSegmentation, (graph, outputs) => Adapt(options!, graph, outputs))
    {
        _options = options!;
    }

    private static BeitStageConfig Adapt(Options options, BeitScoringGraph graph, List<(string, string, long[])> outputs)
    {
        const BeitOnnxTask task = BeitOnnxTask.SemanticSegmentation;
        var g = graph.Model.Graph;
        var logits = graph.RequireOutput(BeitOnnxNames.Logits, 4, StageName, task);
        outputs.Add((BeitOnnxNames.Logits, BeitColumns.Logits, logits));
        if (options.ScoreColumnName != null)
        {
            if (OnnxGraphAdapters.DefaultOpset(graph.Model) < 13)
                throw new NotSupportedException($"{StageName}: '{graph.Source}' uses ONNX opset {OnnxGraphAdapters.DefaultOpset(graph.Model)}; class scores need opset 13 or later.");
            OnnxGraphAdapters.AddNode(g, "Softmax", [BeitOnnxNames.Logits], "__beit_segmentation_softmax", OnnxGraphAdapters.IntAttribute("axis", 1));
            outputs.Add(("__beit_segmentation_softmax", BeitColumns.SegmentationScores, logits));
        }
        return new BeitStageConfig
        {
            Stage = BeitStages.Segmenter,
            Column = options.InputColumnName,
            Output = options.OutputColumnName,
            ImageColumn = options.ImageColumnName,
            Channels = graph.Channels,
            Height = graph.Height,
            Width = graph.Width,
            Labels = graph.LabelNames((int)logits[1], null, StageName),
            LogitsHeight = (int)logits[2],
            LogitsWidth = (int)logits[3],
        };
    }

    /// <summary>The class names, by class index.</summary>
    public IReadOnlyList<string> LabelNames => Config.Labels!;

    private protected override string? ImageColumnName => _options.ImageColumnName;

    private protected override void Before(BeitStageBuilder builder)
    {
        if (_options.ImageColumnName is { } image) builder.In(BeitColumns.Image, image);
    }

    private protected override void After(BeitStageBuilder builder)
    {
        if (_options.ImageColumnName == null) builder.Map(new SegmentationMapAtInputSizeMapping(), BeitColumns.LabelMap, BeitColumns.LabelMapSize);
        else builder.Map(new SegmentationMapMapping(), BeitColumns.LabelMap, BeitColumns.LabelMapSize);
    }

    private protected override (string, string)[] Outputs()
    {
        var outputs = new List<(string, string)>
        {
            (_options.OutputColumnName, BeitColumns.LabelMap),
            (_options.SizeColumnName, BeitColumns.LabelMapSize),
        };
        if (_options.ScoreColumnName != null) outputs.Add((_options.ScoreColumnName, BeitColumns.SegmentationScores));
        return [.. outputs];
    }

    private protected override BeitSegmenterTransformer Create(TransformerChain<ITransformer> chain, OwnedTempFile modelFile) =>
        new(chain, Config, modelFile);
}

/// <summary>The fitted <see cref="BeitSegmenterEstimator"/>: an ONNX Runtime session over the UperNet segmentation graph.</summary>
public sealed class BeitSegmenterTransformer : BeitModelStageTransformer
{
    internal BeitSegmenterTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The class-map column.</summary>
    public string OutputColumnName => StageConfig.Output;

    /// <summary>The decoded-image column giving target sizes, or null (maps at the model's input size).</summary>
    public string? ImageColumnName => StageConfig.ImageColumn;

    /// <summary>The class names, by class index.</summary>
    public IReadOnlyList<string> LabelNames => StageConfig.Labels!;

    /// <summary>The typed view of the <c>BeitSegmenter</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static BeitSegmenterTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.Segmenter, (chain, config) => new BeitSegmenterTransformer(chain, config, null));
    }
}
