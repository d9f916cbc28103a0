using System.Collections.Concurrent;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>
/// Thread-safe single predictions on one shared model. A <c>PredictionEngine</c> is not thread-safe, and by default it
/// <i>owns</i> its model: disposing any engine disposes the model under every other engine and transformer (ONNX
/// Runtime then fails on each of them). This pool creates its engines with
/// <c>PredictionEngineOptions.OwnsTransformer = false</c>, keeps at most <c>maxRetained</c> idle ones, and never
/// disposes the model: the caller that loaded the model disposes it, after the pool.
/// </summary>
/// <typeparam name="TInput">The input row class.</typeparam>
/// <typeparam name="TOutput">The output row class.</typeparam>
public sealed class BeitPredictionEnginePool<TInput, TOutput> : IDisposable
    where TInput : class
    where TOutput : class, new()
{
    private readonly MLContext _mlContext;
    private readonly ITransformer _model;
    private readonly int _maxRetained;
    private readonly SchemaDefinition? _inputDefinition, _outputDefinition;
    private readonly ConcurrentBag<PredictionEngine<TInput, TOutput>> _idle = [];
    private int _idleCount;
    private volatile bool _disposed;

    /// <summary>Creates the pool; engines are created on demand.</summary>
    /// <param name="mlContext">The context that creates the engines.</param>
    /// <param name="model">The shared model (not owned: dispose it yourself after the pool).</param>
    /// <param name="maxRetained">How many idle engines to keep (default: the processor count); surplus engines are disposed, which never touches the model.</param>
    public BeitPredictionEnginePool(MLContext mlContext, ITransformer model, int? maxRetained = null)
        : this(mlContext, model, maxRetained, null, null)
    {
    }

    /// <summary>Creates the pool with schema definitions that map the row classes' members to other column names.</summary>
    /// <param name="mlContext">The context that creates the engines.</param>
    /// <param name="model">The shared model (not owned: dispose it yourself after the pool).</param>
    /// <param name="maxRetained">How many idle engines to keep (null: the processor count).</param>
    /// <param name="inputSchemaDefinition">How <typeparamref name="TInput"/> maps to the model's input columns (null: by member name).</param>
    /// <param name="outputSchemaDefinition">How the model's output columns map to <typeparamref name="TOutput"/> (null: by member name).</param>
    public BeitPredictionEnginePool(MLContext mlContext, ITransformer model, int? maxRetained,
        SchemaDefinition? inputSchemaDefinition, SchemaDefinition? outputSchemaDefinition)
    {
        _inputDefinition = inputSchemaDefinition;
        _outputDefinition = outputSchemaDefinition;
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        _maxRetained = maxRetained ?? Environment.ProcessorCount;
        ArgumentOutOfRangeException.ThrowIfLessThan(_maxRetained, 1, nameof(maxRetained));
        _mlContext = mlContext;
        _model = model;
    }

    /// <summary>Predicts one row with an engine taken from the pool (or a new one) and returns the engine afterwards.</summary>
    public TOutput Predict(TInput input)
    {
        var engine = Rent();
        try
        {
            return engine.Predict(input);
        }
        finally
        {
            Return(engine);
        }
    }

    /// <summary>Idle engines held now (for tests and diagnostics).</summary>
    internal int IdleCount => Volatile.Read(ref _idleCount);

    private PredictionEngine<TInput, TOutput> Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryTake(out var engine))
        {
            Interlocked.Decrement(ref _idleCount);
            return engine;
        }
        return _mlContext.Model.CreatePredictionEngine<TInput, TOutput>(_model, new PredictionEngineOptions
        {
            OwnsTransformer = false,
            InputSchemaDefinition = _inputDefinition,
            OutputSchemaDefinition = _outputDefinition,
        });
    }

    private void Return(PredictionEngine<TInput, TOutput> engine)
    {
        if (!_disposed && Interlocked.Increment(ref _idleCount) <= _maxRetained)
        {
            _idle.Add(engine);
            return;
        }
        if (!_disposed) Interlocked.Decrement(ref _idleCount);
        engine.Dispose(); // safe: the engine does not own the model
    }

    /// <summary>Disposes the idle engines (never the model).</summary>
    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var engine))
        {
            Interlocked.Decrement(ref _idleCount);
            engine.Dispose();
        }
    }
}
