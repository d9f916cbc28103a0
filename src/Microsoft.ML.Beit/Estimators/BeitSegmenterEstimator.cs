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
public sealed class BeitSegmenterEstimator : IEstimator<BeitSegmenterTransformer>
{
    internal const string StageName = "BeitSegmenter";

    private readonly TransformsCatalog _catalog;
    private readonly Options _options;
    private readonly BeitStageConfig _config;
    private readonly byte[] _onnx;
    private readonly string[] _onnxOutputs;

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
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Model == null) throw new ArgumentException($"{StageName}: Options.Model is required.", nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.OutputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.SizeColumnName);
        _catalog = catalog;
        _options = options;

        const BeitOnnxTask task = BeitOnnxTask.SemanticSegmentation;
        var graph = options.Model.Load(task, StageName, options);
        var g = graph.Model.Graph;
        var logits = graph.RequireOutput(BeitOnnxNames.Logits, 4, StageName, task);
        var outputs = new List<(string, string, long[])> { (BeitOnnxNames.Logits, BeitColumns.Logits, logits) };
        if (options.ScoreColumnName != null)
        {
            if (OnnxGraphAdapters.DefaultOpset(graph.Model) < 13)
                throw new NotSupportedException($"{StageName}: '{graph.Source}' uses ONNX opset {OnnxGraphAdapters.DefaultOpset(graph.Model)}; class scores need opset 13 or later.");
            OnnxGraphAdapters.AddNode(g, "Softmax", [BeitOnnxNames.Logits], "__beit_segmentation_softmax", OnnxGraphAdapters.IntAttribute("axis", 1));
            outputs.Add(("__beit_segmentation_softmax", BeitColumns.SegmentationScores, logits));
        }
        OnnxGraphAdapters.FlattenPixelInput(g, graph.Channels, graph.Height, graph.Width);
        OnnxGraphAdapters.SetOutputs(g, outputs);
        _onnx = graph.ToBytes();
        _onnxOutputs = outputs.Select(o => o.Item2).ToArray();
        _config = new BeitStageConfig
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
    public IReadOnlyList<string> LabelNames => _config.Labels!;

    /// <summary>The graph the stage runs (flattened input, logits output), for <see cref="Scoring.BeitBatchScorer"/>.</summary>
    internal byte[] OnnxModel => _onnx;

    /// <summary>The stage configuration (input size, labels, logits size).</summary>
    internal BeitStageConfig StageConfig => _config;

    /// <summary>Creates the ONNX Runtime session and the stage's chain.</summary>
    public BeitSegmenterTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = BeitSchemaChecks.Require(input.Schema, _options.InputColumnName, StageName, BeitSchemaChecks.IsFloatVector, BeitClassifierEstimator.ExpectedInput);
        BeitSchemaChecks.CheckPixelCount(column, _config.InputLength, StageName);
        if (_options.ImageColumnName != null)
            BeitSchemaChecks.Require(input.Schema, _options.ImageColumnName, StageName, BeitSchemaChecks.IsByteVector, "a decoded-image column (the output of LoadBeitImages)");
        string? image = _options.ImageColumnName;
        return BeitStageBuilder.FitModelStage(_catalog, input, _config, _onnx, _onnxOutputs, _options,
            before: image == null ? null : b => b.In(BeitColumns.Image, image),
            after: image == null
                ? b => b.Map(new SegmentationMapAtInputSizeMapping(), BeitColumns.LabelMap, BeitColumns.LabelMapSize)
                : b => b.Map(new SegmentationMapMapping(), BeitColumns.LabelMap, BeitColumns.LabelMapSize),
            Outputs(), (chain, file) => new BeitSegmenterTransformer(chain, _config, file));
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        BeitSchemaChecks.Require(inputSchema, _options.InputColumnName, StageName, BeitSchemaChecks.IsFloatVector, BeitClassifierEstimator.ExpectedInput);
        if (_options.ImageColumnName != null)
            BeitSchemaChecks.Require(inputSchema, _options.ImageColumnName, StageName, BeitSchemaChecks.IsByteVector, "a decoded-image column (the output of LoadBeitImages)");
        return SchemaShapeShim.OutputShape(_catalog, inputSchema, Outputs());
    }

    private (string, string)[] Outputs()
    {
        var outputs = new List<(string, string)>
        {
            (_options.OutputColumnName, BeitColumns.LabelMap),
            (_options.SizeColumnName, BeitColumns.LabelMapSize),
        };
        if (_options.ScoreColumnName != null) outputs.Add((_options.ScoreColumnName, BeitColumns.SegmentationScores));
        return [.. outputs];
    }
}

/// <summary>The fitted <see cref="BeitSegmenterEstimator"/>: an ONNX Runtime session over the UperNet segmentation graph.</summary>
public sealed class BeitSegmenterTransformer : BeitTransformerBase
{
    internal BeitSegmenterTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The pixel-values column.</summary>
    public string InputColumnName => StageConfig.Column;

    /// <summary>The class-map column.</summary>
    public string OutputColumnName => StageConfig.Output;

    /// <summary>The decoded-image column giving target sizes, or null (maps at the model's input size).</summary>
    public string? ImageColumnName => StageConfig.ImageColumn;

    /// <summary>The class names, by class index.</summary>
    public IReadOnlyList<string> LabelNames => StageConfig.Labels!;

    /// <summary>The model's input height in pixels.</summary>
    public int ImageHeight => StageConfig.Height;

    /// <summary>The model's input width in pixels.</summary>
    public int ImageWidth => StageConfig.Width;

    /// <summary>The typed view of the <c>BeitSegmenter</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static BeitSegmenterTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.Segmenter, (chain, config) => new BeitSegmenterTransformer(chain, config, null));
    }
}
