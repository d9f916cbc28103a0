using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Onnx;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Assembles a stage as a chain of built-in estimators: row marker → configuration column → the user's inputs copied
/// to fixed internal names → the stage's work → results copied to the user's names → internal columns dropped.
/// </summary>
internal sealed class BeitStageBuilder
{
    private readonly TransformsCatalog _catalog;
    private readonly HashSet<string> _internal = new(StringComparer.Ordinal);
    private EstimatorChain<ITransformer> _chain = new();

    public BeitStageBuilder(TransformsCatalog catalog, BeitStageConfig config)
    {
        _catalog = catalog;
        Map(new RowMarkerMapping(), BeitColumns.Row);
        Add(catalog.Expression(BeitColumns.Config, config.ToExpression(), BeitColumns.Row), BeitColumns.Config);
    }

    public TransformsCatalog Catalog => _catalog;

    /// <summary>Appends an estimator; <paramref name="internalOutputs"/> are dropped at the end.</summary>
    public BeitStageBuilder Add(IEstimator<ITransformer> estimator, params string[] internalOutputs)
    {
        _chain = _chain.Append(estimator);
        foreach (var c in internalOutputs) _internal.Add(c);
        return this;
    }

    /// <summary>
    /// Appends one of our saved mappings: its factory gives the action, its attribute the contract name the zip
    /// stores; <paramref name="outputs"/> are the internal columns it writes.
    /// </summary>
    public BeitStageBuilder Map<TSrc, TDst>(CustomMappingFactory<TSrc, TDst> factory, params string[] outputs)
        where TSrc : class, new() where TDst : class, new()
    {
        var attribute = (CustomMappingFactoryAttributeAttribute)Attribute.GetCustomAttribute(
            factory.GetType(), typeof(CustomMappingFactoryAttributeAttribute))!;
        return Add(_catalog.CustomMapping(factory.GetMapping(), attribute.ContractName), outputs);
    }

    /// <summary>
    /// <see cref="Map"/> for a mapping that reads an <c>MLImage</c> column. ML.NET's <c>CustomMappingEstimator</c>
    /// compares item types by reference when it propagates a <c>SchemaShape</c>, which no <c>ImageDataViewType</c>
    /// instance passes; its transformer compares types properly, so only the shape step is stood in for here.
    /// </summary>
    public BeitStageBuilder MapImage<TSrc, TDst>(CustomMappingFactory<TSrc, TDst> factory, params string[] outputs)
        where TSrc : class, new() where TDst : class, new()
    {
        var attribute = (CustomMappingFactoryAttributeAttribute)Attribute.GetCustomAttribute(
            factory.GetType(), typeof(CustomMappingFactoryAttributeAttribute))!;
        return Add(new ImageInputEstimator(_catalog, _catalog.CustomMapping(factory.GetMapping(), attribute.ContractName)), outputs);
    }

    private sealed class ImageInputEstimator(TransformsCatalog catalog, IEstimator<ITransformer> mapping) : IEstimator<ITransformer>
    {
        public ITransformer Fit(IDataView input) => mapping.Fit(input);

        public SchemaShape GetOutputSchema(SchemaShape inputSchema) => SchemaShapeShim.WithInternalColumns(catalog, inputSchema);
    }

    /// <summary>Copies a user's column to an internal name.</summary>
    public BeitStageBuilder In(string internalName, string userColumn) => Add(_catalog.CopyColumns(internalName, userColumn), internalName);

    /// <summary>Runs an ONNX graph file: input <see cref="BeitColumns.PixelValues"/>, the given internal outputs.</summary>
    public BeitStageBuilder Onnx(string modelFile, string[] outputs, BeitOnnxStageOptions options) =>
        Add(_catalog.ApplyOnnxModel(new OnnxOptions
        {
            ModelFile = modelFile,
            InputColumns = [BeitColumns.PixelValues],
            OutputColumns = outputs,
            GpuDeviceId = options.GpuDeviceId,
            FallbackToCpu = options.FallbackToCpu,
            IntraOpNumThreads = options.IntraOpNumThreads,
            InterOpNumThreads = options.InterOpNumThreads,
        }), outputs);

    /// <summary>Copies results to the user's names, drops the internal columns and returns the chain.</summary>
    public EstimatorChain<ITransformer> Finish(params (string UserColumn, string InternalName)[] outputs)
    {
        foreach (var (user, name) in outputs) Add(_catalog.CopyColumns(user, name));
        Add(_catalog.DropColumns([.. _internal]));
        return _chain;
    }
}
