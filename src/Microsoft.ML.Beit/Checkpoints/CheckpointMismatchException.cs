namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// A checkpoint's tensors do not fit the model built from its configuration: tensors the model needs are missing,
/// tensors the model does not have are present, or tensors have the wrong shape or element type. Each list names the tensors.
/// </summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>Creates the exception from the three lists; the message names up to ten tensors of each kind.</summary>
    /// <param name="source">The checkpoint folder or file.</param>
    /// <param name="missing">Tensors the model needs that the checkpoint lacks.</param>
    /// <param name="unexpected">Tensors of the checkpoint the model does not have.</param>
    /// <param name="mismatched">Tensors whose checkpoint shape differs from the model's.</param>
    public CheckpointMismatchException(string source, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<(string Name, long[] Expected, long[] Actual)> mismatched)
        : this(source, missing, unexpected, mismatched, [])
    {
    }

    /// <summary>Creates the exception from the four lists; the message names up to ten tensors of each kind.</summary>
    /// <param name="source">The checkpoint folder or file.</param>
    /// <param name="missing">Tensors the model needs that the checkpoint lacks.</param>
    /// <param name="unexpected">Tensors of the checkpoint the model does not have.</param>
    /// <param name="mismatched">Tensors whose checkpoint shape differs from the model's.</param>
    /// <param name="wrongType">Tensors whose element type cannot stand for the model's (for example integers where a float weight is expected).</param>
    public CheckpointMismatchException(string source, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<(string Name, long[] Expected, long[] Actual)> mismatched, IReadOnlyList<(string Name, string Expected, TensorDType Actual)> wrongType)
        : base(Describe(source, missing, unexpected, mismatched, wrongType))
    {
        Source = source;
        Missing = missing;
        Unexpected = unexpected;
        Mismatched = mismatched;
        WrongType = wrongType;
    }

    /// <summary>The checkpoint folder or file.</summary>
    public new string Source { get; }
    /// <summary>Tensors the model needs that the checkpoint lacks.</summary>
    public IReadOnlyList<string> Missing { get; }
    /// <summary>Tensors of the checkpoint the model does not have.</summary>
    public IReadOnlyList<string> Unexpected { get; }
    /// <summary>Tensors whose checkpoint shape (<c>Actual</c>) differs from the model's (<c>Expected</c>).</summary>
    public IReadOnlyList<(string Name, long[] Expected, long[] Actual)> Mismatched { get; }
    /// <summary>Tensors whose element type (<c>Actual</c>) cannot stand for the model's (<c>Expected</c>, e.g. "floating-point").</summary>
    public IReadOnlyList<(string Name, string Expected, TensorDType Actual)> WrongType { get; }

    /// <summary>
    /// Throws when a checkpoint tensor that loads into a float weight is not floating-point. Only the integer buffers
    /// transformers keeps (<c>relative_position_index</c>, BatchNorm's <c>num_batches_tracked</c>) may hold integers:
    /// converting an integer tensor into a weight would load silently and predict nonsense.
    /// </summary>
    internal static void ThrowIfNotFloat(IReadOnlyDictionary<string, TensorData> tensors, string source)
    {
        var wrong = tensors.Where(kv => !IsFloat(kv.Value.DType) && !IsIntegerBuffer(kv.Key))
            .Select(kv => (kv.Key, "floating-point", kv.Value.DType))
            .OrderBy(w => w.Key, StringComparer.Ordinal).ToList();
        if (wrong.Count > 0) throw new CheckpointMismatchException(source, [], [], [], wrong);
    }

    internal static bool IsFloat(TensorDType d) => d is TensorDType.F32 or TensorDType.F16 or TensorDType.BF16 or TensorDType.F64;

    private static bool IsIntegerBuffer(string name) =>
        BeitWeightNames.IsIgnoredOnLoad(name) || name.EndsWith("num_batches_tracked", StringComparison.Ordinal);

    private static string Describe(string source, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<(string Name, long[] Expected, long[] Actual)> mismatched, IReadOnlyList<(string Name, string Expected, TensorDType Actual)> wrongType)
    {
        static string List(IEnumerable<string> names, int count) =>
            string.Join(", ", names.Take(10)) + (count > 10 ? $", … ({count} in all)" : "");
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing: {List(missing, missing.Count)}");
        if (unexpected.Count > 0) parts.Add($"unexpected: {List(unexpected, unexpected.Count)}");
        if (mismatched.Count > 0)
            parts.Add($"wrong shape: {List(mismatched.Select(m => $"{m.Name} (checkpoint [{string.Join(",", m.Actual)}], model [{string.Join(",", m.Expected)}])"), mismatched.Count)}");
        if (wrongType.Count > 0)
            parts.Add($"wrong element type: {List(wrongType.Select(w => $"{w.Name} (checkpoint {w.Actual}, model {w.Expected})"), wrongType.Count)}");
        return $"Checkpoint '{source}' does not fit the model; {string.Join("; ", parts)}.";
    }
}
