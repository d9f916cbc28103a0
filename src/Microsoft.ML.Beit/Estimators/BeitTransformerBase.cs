using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// The common behaviour of the BEiT transformers. Each one is a typed view over a chain of ML.NET's built-in
/// transformers (<c>CustomMapping</c>s with fixed contract names, a constant <c>Expression</c> column carrying the
/// stage's configuration, <c>ApplyOnnxModel</c>, <c>MapValueToKey</c>, <c>CopyColumns</c>, <c>DropColumns</c>):
/// saving writes exactly that chain, so <c>mlContext.Model.Load</c> needs nothing from this library but its assembly,
/// and the stage's <c>FromLoaded</c> gives the typed view back.
/// </summary>
/// <remarks>
/// <see cref="Transform"/> also reports which row a bad value came from (see <see cref="BeitInputException"/>).
/// Dispose the transformer (or the chain holding it) to release the ONNX Runtime session and its temporary model file.
/// </remarks>
public abstract class BeitTransformerBase : ITransformer, IDisposable
{
    private readonly TransformerChain<ITransformer> _chain;
    private readonly OwnedTempFile? _modelFile;
    private bool _disposed;

    private protected BeitTransformerBase(TransformerChain<ITransformer> chain, BeitStageConfig config, OwnedTempFile? modelFile)
    {
        _chain = chain;
        StageConfig = config;
        _modelFile = modelFile;
    }

    internal BeitStageConfig StageConfig { get; }

    internal TransformerChain<ITransformer> Chain => _chain;

    /// <summary>The temporary ONNX file this stage owns, if any (tests check it is deleted on dispose).</summary>
    internal string? ModelFilePath => _modelFile?.Path;

    /// <summary>Always true: every stage maps rows one to one, so <c>PredictionEngine</c> works.</summary>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _chain.GetOutputSchema(inputSchema);
    }

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ((ITransformer)_chain).GetRowToRowMapper(inputSchema);
    }

    /// <summary>Applies the stage lazily; a bad row raises <see cref="BeitInputException"/> naming the column, the row and the source.</summary>
    public IDataView Transform(IDataView input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(input);
        // What TransformerChain.Transform does, with every step's output watched: ML.NET runs mappings on parallel
        // worker cursors, so the step whose getter failed is the only place that still knows the row.
        IDataView view = input;
        foreach (var transformer in _chain) view = new RowPositionDataView(transformer.Transform(view));
        return view;
    }

    /// <summary>Saves the chain of built-in transformers this stage is made of.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ((ICanSaveModel)_chain).Save(ctx);
    }

    /// <summary>Releases the ONNX Runtime session (if any) and deletes the temporary ONNX file this stage wrote.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _chain.Dispose();
        _modelFile?.Dispose();
        GC.SuppressFinalize(this);
    }
}
