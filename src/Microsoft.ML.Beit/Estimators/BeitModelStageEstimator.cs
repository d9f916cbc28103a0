using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// The skeleton of the model stages (<see cref="BeitClassifierEstimator"/>, <see cref="BeitFeaturizerEstimator"/>,
/// <see cref="BeitSegmenterEstimator"/>): load or export the task's ONNX graph, adapt its outputs, and at
/// <see cref="Fit"/> chain row marker → configuration → pixel check → ONNX Runtime → the stage's mappings → the
/// user's column names. A stage only says which graph outputs it adds and how they map to columns.
/// </summary>
/// <typeparam name="TTransformer">The fitted stage.</typeparam>
public abstract class BeitModelStageEstimator<TTransformer> : IEstimator<TTransformer>
    where TTransformer : BeitModelStageTransformer
{
    internal const string ExpectedInput = "a float vector of pixel values (the output of BeitImageProcessor)";
    private const string ExpectedImage = "a decoded-image column (the output of LoadBeitImages)";

    private readonly BeitOnnxStageOptions _options;
    private readonly string _inputColumnName;
    private readonly string _stageName;
    private readonly byte[] _onnx;
    private readonly string[] _onnxOutputs;

    /// <summary>
    /// Checks the options, loads the graph and lets <paramref name="adapt"/> add the stage's outputs (graph value,
    /// internal column, static dimensions) and return the stage's configuration; then flattens the pixel input.
    /// </summary>
    private protected BeitModelStageEstimator(TransformsCatalog catalog, BeitOnnxStageOptions options, BeitModelSource? model,
        string inputColumnName, string[] requiredColumnNames, string stageName, BeitOnnxTask task,
        Func<BeitScoringGraph, List<(string Value, string Column, long[] Dims)>, BeitStageConfig> adapt)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        // Before the export: no native ONNX Runtime fails here, with the package to add, not at the first row.
        Scoring.BeitOnnxRuntime.EnsureAvailable(stageName);
        if (model == null) throw new ArgumentException($"{stageName}: Options.Model is required.", nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(inputColumnName);
        foreach (var name in requiredColumnNames)
            if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{stageName}: an output column name is null or empty.", nameof(options));
        Catalog = catalog;
        _options = options;
        _inputColumnName = inputColumnName;
        _stageName = stageName;

        var graph = model.Load(task, stageName, options);
        var outputs = new List<(string Value, string Column, long[] Dims)>();
        Config = adapt(graph, outputs);
        OnnxGraphAdapters.FlattenPixelInput(graph.Model.Graph, graph.Channels, graph.Height, graph.Width);
        OnnxGraphAdapters.SetOutputs(graph.Model.Graph, outputs);
        _onnx = graph.ToBytes();
        _onnxOutputs = outputs.Select(o => o.Column).ToArray();
    }

    private protected TransformsCatalog Catalog { get; }

    private protected BeitStageConfig Config { get; }

    /// <summary>The model's input height in pixels.</summary>
    public int ImageHeight => Config.Height;

    /// <summary>The model's input width in pixels.</summary>
    public int ImageWidth => Config.Width;

    /// <summary>The graph the stage runs (flattened input, the stage's outputs), for benchmarks against a raw session.</summary>
    internal byte[] OnnxModel => _onnx;

    /// <summary>The stage configuration (input size, labels), for <see cref="Scoring.BeitBatchScorer"/>.</summary>
    internal BeitStageConfig StageConfig => Config;

    /// <summary>The internal columns copied to the user's columns, as (user column, internal column).</summary>
    private protected abstract (string UserColumn, string InternalName)[] Outputs();

    /// <summary>The decoded-image column the stage also reads, or null.</summary>
    private protected virtual string? ImageColumnName => null;

    /// <summary>Mappings run before the ONNX graph (after the pixel column is copied in).</summary>
    private protected virtual void Before(BeitStageBuilder builder)
    {
    }

    /// <summary>Mappings run on the graph's outputs.</summary>
    private protected virtual void After(BeitStageBuilder builder)
    {
    }

    /// <summary>A built-in estimator run after <see cref="After"/> whose output shape matters (the classifier's key mapping), or null.</summary>
    private protected virtual IEstimator<ITransformer>? KeyMapping() => null;

    private protected abstract TTransformer Create(TransformerChain<ITransformer> chain, OwnedTempFile modelFile);

    /// <summary>Creates the ONNX Runtime session and the stage's chain.</summary>
    public TTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = BeitSchemaChecks.Require(input.Schema, _inputColumnName, _stageName, BeitSchemaChecks.IsFloatVector, ExpectedInput);
        BeitSchemaChecks.CheckPixelCount(column, Config.InputLength, _stageName);
        if (ImageColumnName is { } image)
            BeitSchemaChecks.Require(input.Schema, image, _stageName, BeitSchemaChecks.IsByteVector, ExpectedImage);
        var file = OwnedTempFile.Write(_onnx, ".onnx");
        try
        {
            var builder = new BeitStageBuilder(Catalog, Config).In(BeitColumns.Input, Config.Column);
            Before(builder);
            builder.Map(new CheckPixelsMapping(), BeitColumns.PixelValues).Onnx(file.Path, _onnxOutputs, _options);
            After(builder);
            var keyMapping = KeyMapping();
            if (keyMapping != null) builder.Add(keyMapping);
            return Create(builder.Finish(Outputs()).Fit(input), file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        BeitSchemaChecks.Require(inputSchema, _inputColumnName, _stageName, BeitSchemaChecks.IsFloatVector, ExpectedInput);
        if (ImageColumnName is { } image)
            BeitSchemaChecks.Require(inputSchema, image, _stageName, BeitSchemaChecks.IsByteVector, ExpectedImage);
        return SchemaShapeShim.OutputShape(Catalog, inputSchema, Outputs(), KeyMapping());
    }
}

/// <summary>
/// A fitted model stage: an ONNX Runtime session over a BEiT graph inside a chain of ML.NET's built-in transformers
/// (see <see cref="BeitTransformerBase"/>).
/// </summary>
public abstract class BeitModelStageTransformer : BeitTransformerBase
{
    private protected BeitModelStageTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
        : base(chain, config, modelFile)
    {
    }

    /// <summary>The pixel-values column.</summary>
    public string InputColumnName => StageConfig.Column;

    /// <summary>The model's input height in pixels.</summary>
    public int ImageHeight => StageConfig.Height;

    /// <summary>The model's input width in pixels.</summary>
    public int ImageWidth => StageConfig.Width;
}
