using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.BeitClassifier</c>: pixel values → <c>Score</c> (class probabilities, a known-size float
/// vector) and <c>PredictedLabel</c> (a key whose values are the checkpoint's <c>id2label</c> names), ready for
/// <c>mlContext.MulticlassClassification.Evaluate</c> once the label column is mapped with <see cref="LabelKeyData"/>.
/// </summary>
public sealed class BeitClassifierEstimator : IEstimator<BeitClassifierTransformer>
{
    internal const string StageName = "BeitClassifier";

    private readonly TransformsCatalog _catalog;
    private readonly Options _options;
    private readonly BeitStageConfig _config;
    private readonly byte[] _onnx;
    private readonly string[] _onnxOutputs;
    private IDataView? _keyData;

    /// <summary>Options of <see cref="BeitClassifierEstimator"/>.</summary>
    public sealed class Options : BeitOnnxStageOptions
    {
        /// <summary>The model: a checkpoint folder, an ONNX file or bytes, or tensors in memory (required).</summary>
        public BeitModelSource? Model { get; set; }

        /// <summary>The pixel-values column (default <c>PixelValues</c>).</summary>
        public string InputColumnName { get; set; } = "PixelValues";

        /// <summary>The probabilities column (default <c>Score</c>).</summary>
        public string ScoreColumnName { get; set; } = "Score";

        /// <summary>The predicted-label key column (default <c>PredictedLabel</c>).</summary>
        public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

        /// <summary>Also output the raw logits to this column (default: not output).</summary>
        public string? LogitsColumnName { get; set; }

        /// <summary>Class names overriding the model's <c>id2label</c> (e.g. for a foreign ONNX file without configuration).</summary>
        public IReadOnlyList<string>? LabelNames { get; set; }
    }

    internal BeitClassifierEstimator(TransformsCatalog catalog, Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Model == null) throw new ArgumentException($"{StageName}: Options.Model is required.", nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.ScoreColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.PredictedLabelColumnName);
        _catalog = catalog;
        _options = options;

        var graph = options.Model.Load(BeitOnnxTask.ImageClassification, StageName, options);
        var g = graph.Model.Graph;
        var outputs = new List<(string, string, long[])>();
        long classes;
        if (graph.OutputDims(BeitOnnxNames.Probabilities) is [_, > 0] probabilities)
        {
            classes = probabilities[1];
            outputs.Add((BeitOnnxNames.Probabilities, BeitColumns.Probabilities, [-1, classes]));
        }
        else
        {
            // Another exporter's graph with logits only: add the softmax (rank 2, so every opset agrees on the axis).
            classes = graph.RequireOutput(BeitOnnxNames.Logits, 2, StageName, BeitOnnxTask.ImageClassification)[1];
            OnnxGraphAdapters.AddNode(g, "Softmax", [BeitOnnxNames.Logits], "__beit_softmax", OnnxGraphAdapters.IntAttribute("axis", 1));
            outputs.Add(("__beit_softmax", BeitColumns.Probabilities, [-1, classes]));
        }
        if (options.LogitsColumnName != null)
        {
            graph.RequireOutput(BeitOnnxNames.Logits, 2, StageName, BeitOnnxTask.ImageClassification);
            outputs.Add((BeitOnnxNames.Logits, BeitColumns.Logits, [-1, classes]));
        }
        OnnxGraphAdapters.FlattenPixelInput(g, graph.Channels, graph.Height, graph.Width);
        OnnxGraphAdapters.SetOutputs(g, outputs);
        _onnx = graph.ToBytes();
        _onnxOutputs = outputs.Select(o => o.Item2).ToArray();
        _config = new BeitStageConfig
        {
            Stage = BeitStages.Classifier,
            Column = options.InputColumnName,
            Output = options.PredictedLabelColumnName,
            Channels = graph.Channels,
            Height = graph.Height,
            Width = graph.Width,
            Labels = graph.LabelNames((int)classes, options.LabelNames, StageName),
        };
    }

    /// <summary>The class names, by class index (duplicates in <c>id2label</c> get their index appended).</summary>
    public IReadOnlyList<string> LabelNames => _config.Labels!;

    /// <summary>
    /// A one-column view of the class names in class order: pass it as <c>keyData</c> to <c>MapValueToKey</c> so a
    /// text label column gets the same key type as <c>PredictedLabel</c> (needed by <c>MulticlassClassification.Evaluate</c>).
    /// </summary>
    public IDataView LabelKeyData => _keyData ??= BeitClassifierTransformer.MakeKeyData(_config.Labels!);

    /// <summary>The model's input height in pixels.</summary>
    public int ImageHeight => _config.Height;

    /// <summary>The model's input width in pixels.</summary>
    public int ImageWidth => _config.Width;

    /// <summary>The graph the stage runs (flattened input, probabilities output), for benchmarks against a raw session.</summary>
    internal byte[] OnnxModel => _onnx;

    /// <summary>The stage configuration (input size, labels), for <see cref="Scoring.BeitBatchScorer"/>.</summary>
    internal BeitStageConfig StageConfig => _config;

    /// <summary>Creates the ONNX Runtime session and the stage's chain.</summary>
    public BeitClassifierTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = BeitSchemaChecks.Require(input.Schema, _options.InputColumnName, StageName, BeitSchemaChecks.IsFloatVector, ExpectedInput);
        BeitSchemaChecks.CheckPixelCount(column, _config.InputLength, StageName);
        return BeitStageBuilder.FitModelStage(_catalog, input, _config, _onnx, _onnxOutputs, _options, before: null,
            after: b => b.Map(new ClassifierLabelMapping(), BeitColumns.PredictedName).Add(KeyMapping()),
            Outputs(), (chain, file) => new BeitClassifierTransformer(chain, _config, file));
    }

    internal const string ExpectedInput = "a float vector of pixel values (the output of BeitImageProcessor)";

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        BeitSchemaChecks.Require(inputSchema, _options.InputColumnName, StageName, BeitSchemaChecks.IsFloatVector, ExpectedInput);
        return SchemaShapeShim.OutputShape(_catalog, inputSchema, Outputs(), KeyMapping());
    }

    private IEstimator<ITransformer> KeyMapping() =>
        _catalog.Conversion.MapValueToKey(_options.PredictedLabelColumnName, BeitColumns.PredictedName, keyData: LabelKeyData);

    private (string, string)[] Outputs() => _options.LogitsColumnName == null
        ? [(_options.ScoreColumnName, BeitColumns.Probabilities)]
        : [(_options.ScoreColumnName, BeitColumns.Probabilities), (_options.LogitsColumnName, BeitColumns.Logits)];
}

/// <summary>The fitted <see cref="BeitClassifierEstimator"/>: an ONNX Runtime session over the classifier graph.</summary>
public sealed class BeitClassifierTransformer : BeitTransformerBase
{
    private static readonly MLContext s_ml = new();
    private IDataView? _keyData;

    internal BeitClassifierTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The pixel-values column.</summary>
    public string InputColumnName => StageConfig.Column;

    /// <summary>The predicted-label key column.</summary>
    public string PredictedLabelColumnName => StageConfig.Output;

    /// <summary>The class names, by class index.</summary>
    public IReadOnlyList<string> LabelNames => StageConfig.Labels!;

    /// <summary>The class names as <c>keyData</c> for <c>MapValueToKey</c> (see <see cref="BeitClassifierEstimator.LabelKeyData"/>).</summary>
    public IDataView LabelKeyData => _keyData ??= MakeKeyData(StageConfig.Labels!);

    /// <summary>The model's input height in pixels.</summary>
    public int ImageHeight => StageConfig.Height;

    /// <summary>The model's input width in pixels.</summary>
    public int ImageWidth => StageConfig.Width;

    /// <summary>The typed view of the <c>BeitClassifier</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static BeitClassifierTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.Classifier, (chain, config) => new BeitClassifierTransformer(chain, config, null));
    }

    internal static IDataView MakeKeyData(IReadOnlyList<string> labels) =>
        s_ml.Data.LoadFromEnumerable(labels.Select(l => new KeyRow { Label = l }).ToArray());

    internal sealed class KeyRow
    {
        public string Label { get; set; } = "";
    }
}
