using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Finds a stage inside a model: an in-process typed transformer, or, after <c>mlContext.Model.Load</c>, the nested
/// chain that starts with our row marker; the stage's configuration is read back by running its
/// <c>Expression</c> on one row.
/// </summary>
internal static class BeitStageLocator
{
    private static readonly MLContext s_ml = new();

    /// <summary>
    /// The first <typeparamref name="T"/> stage in <paramref name="model"/>: the typed transformer itself when the
    /// model was built in this process, else a new typed view over the loaded chain.
    /// </summary>
    public static T Find<T>(ITransformer model, string stage, Func<TransformerChain<ITransformer>, BeitStageConfig, T> view)
        where T : BeitTransformerBase
    {
        ArgumentNullException.ThrowIfNull(model);
        return TryFind(model, stage) switch
        {
            T typed => typed,
            (TransformerChain<ITransformer> chain, BeitStageConfig config) => view(chain, config),
            _ => throw new ArgumentException(
                $"The model holds no {typeof(T).Name} stage (looked for a chain saved by {typeof(T).Name} in the loaded transformers).", nameof(model)),
        };
    }

    private static object? TryFind(ITransformer model, string stage)
    {
        if (model is BeitTransformerBase typed)
            return typed.StageConfig.Stage == stage ? typed : null;
        if (model is not IEnumerable<ITransformer> parts) return null;
        var list = parts.ToList();
        if (model is TransformerChain<ITransformer> chain && list.Count >= 2 &&
            list[0] is CustomMappingTransformer<RowMarkerMapping.Input, RowMarkerMapping.Output> &&
            ReadConfig(list[1]) is { } config)
            return config.Stage == stage ? (chain, config) : null;
        foreach (var part in list)
            if (TryFind(part, stage) is { } found) return found;
        return null;
    }

    /// <summary>Runs the configuration <c>Expression</c> on a one-row view holding just the row marker.</summary>
    private static BeitStageConfig? ReadConfig(ITransformer expression)
    {
        var row = s_ml.Data.LoadFromEnumerable([new RowMarkerMapping.Output()]);
        IDataView output;
        try
        {
            output = expression.Transform(row);
        }
        catch (ArgumentOutOfRangeException)
        {
            return null;
        }
        var column = output.Schema.GetColumnOrNull(BeitColumns.Config);
        if (column == null) return null;
        using var cursor = output.GetRowCursor([column.Value]);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column.Value);
        if (!cursor.MoveNext()) return null;
        ReadOnlyMemory<char> text = default;
        getter(ref text);
        return BeitStageConfig.Parse(text.ToString());
    }
}
