namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// A checkpoint's tensors do not fit the model built from its configuration: tensors the model needs are missing,
/// tensors the model does not have are present, or tensors have the wrong shape. Each list names the tensors.
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
        : base(Describe(source, missing, unexpected, mismatched))
    {
        Source = source;
        Missing = missing;
        Unexpected = unexpected;
        Mismatched = mismatched;
    }

    /// <summary>The checkpoint folder or file.</summary>
    public new string Source { get; }
    /// <summary>Tensors the model needs that the checkpoint lacks.</summary>
    public IReadOnlyList<string> Missing { get; }
    /// <summary>Tensors of the checkpoint the model does not have.</summary>
    public IReadOnlyList<string> Unexpected { get; }
    /// <summary>Tensors whose checkpoint shape (<c>Actual</c>) differs from the model's (<c>Expected</c>).</summary>
    public IReadOnlyList<(string Name, long[] Expected, long[] Actual)> Mismatched { get; }

    private static string Describe(string source, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<(string Name, long[] Expected, long[] Actual)> mismatched)
    {
        static string List(IEnumerable<string> names, int count) =>
            string.Join(", ", names.Take(10)) + (count > 10 ? $", … ({count} in all)" : "");
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing: {List(missing, missing.Count)}");
        if (unexpected.Count > 0) parts.Add($"unexpected: {List(unexpected, unexpected.Count)}");
        if (mismatched.Count > 0)
            parts.Add($"wrong shape: {List(mismatched.Select(m => $"{m.Name} (checkpoint [{string.Join(",", m.Actual)}], model [{string.Join(",", m.Expected)}])"), mismatched.Count)}");
        return $"Checkpoint '{source}' does not fit the model; {string.Join("; ", parts)}.";
    }
}
