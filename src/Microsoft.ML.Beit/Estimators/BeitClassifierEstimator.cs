using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.BeitClassifier</c>: pixel values → <c>Score</c> (class probabilities, a known-size float
/// vector) and <c>PredictedLabel</c> (a key whose values are the checkpoint's <c>id2label</c> names), ready for
/// <c>mlContext.MulticlassClassification.Evaluate</c> once the label column is mapped with <see cref="LabelKeyData"/>.
/// </summary>
public sealed class BeitClassifierEstimator : BeitModelStageEstimator<BeitClassifierTransformer>
{
    internal const string StageName = "BeitClassifier";

    private readonly Options _options;
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
        : base(catalog, options, options?.Model, options?.InputColumnName!, [options?.ScoreColumnName!, options?.PredictedLabelColumnName!],
               StageName, BeitOnnxTask.ImageClassification, (graph, outputs) => Adapt(options!, graph, outputs))
    {
        _options = options!;
    }

    private static BeitStageConfig Adapt(Options options, BeitScoringGraph graph, List<(string, string, long[])> outputs)
    {
        var g = graph.Model.Graph;
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
        return new BeitStageConfig
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
    public IReadOnlyList<string> LabelNames => Config.Labels!;

    /// <summary>
    /// A one-column view of the class names in class order: pass it as <c>keyData</c> to <c>MapValueToKey</c> so a
    /// text label column gets the same key type as <c>PredictedLabel</c> (needed by <c>MulticlassClassification.Evaluate</c>).
    /// </summary>
    public IDataView LabelKeyData => _keyData ??= BeitClassifierTransformer.MakeKeyData(Config.Labels!);

    private protected override void After(BeitStageBuilder builder) => builder.Map(new ClassifierLabelMapping(), BeitColumns.PredictedName);

    private protected override IEstimator<ITransformer> KeyMapping() =>
        Catalog.Conversion.MapValueToKey(_options.PredictedLabelColumnName, BeitColumns.PredictedName, keyData: LabelKeyData);

    private protected override (string, string)[] Outputs() => _options.LogitsColumnName == null
        ? [(_options.ScoreColumnName, BeitColumns.Probabilities)]
        : [(_options.ScoreColumnName, BeitColumns.Probabilities), (_options.LogitsColumnName, BeitColumns.Logits)];

    private protected override BeitClassifierTransformer Create(TransformerChain<ITransformer> chain, OwnedTempFile modelFile) =>
        new(chain, Config, modelFile);
}

/// <summary>The fitted <see cref="BeitClassifierEstimator"/>: an ONNX Runtime session over the classifier graph.</summary>
public sealed class BeitClassifierTransformer : BeitModelStageTransformer
{
    private static readonly MLContext s_ml = new();
    private IDataView? _keyData;

    internal BeitClassifierTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The predicted-label key column.</summary>
    public string PredictedLabelColumnName => StageConfig.Output;

    /// <summary>The class names, by class index.</summary>
    public IReadOnlyList<string> LabelNames => StageConfig.Labels!;

    /// <summary>The class names as <c>keyData</c> for <c>MapValueToKey</c> (see <see cref="BeitClassifierEstimator.LabelKeyData"/>).</summary>
    public IDataView LabelKeyData => _keyData ??= MakeKeyData(StageConfig.Labels!);

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
