namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// A row of an ML.NET pipeline that a BEiT stage cannot use: a missing or corrupt image, a column that does not hold
/// what the stage expects, or pixel values of the wrong size for the model. The message names the column, the row
/// (when the stage runs through its typed transformer) and the source (an image path, when there is one).
/// </summary>
public sealed class BeitInputException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="columnName">The input column the bad value came from.</param>
    /// <param name="row">The row position, when known.</param>
    /// <param name="sourceName">The image path or other source, when known.</param>
    /// <param name="problem">What is wrong, as a sentence.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public BeitInputException(string columnName, long? row, string? sourceName, string problem, Exception? inner = null)
        : base(Compose(columnName, row, sourceName, problem), inner)
    {
        ColumnName = columnName;
        Row = row;
        SourceName = sourceName;
        Problem = problem;
    }

    /// <summary>The input column the bad value came from.</summary>
    public string ColumnName { get; }

    /// <summary>The 0-based row position, or null when the stage ran without its typed transformer (e.g. a raw loaded chain).</summary>
    public long? Row { get; }

    /// <summary>The image path or other source of the value, when known.</summary>
    public string? SourceName { get; }

    /// <summary>What is wrong, without the column/row prefix.</summary>
    public string Problem { get; }

    /// <summary>The same error with the row position filled in.</summary>
    internal BeitInputException WithRow(long row) => new(ColumnName, row, SourceName, Problem, InnerException);

    private static string Compose(string column, long? row, string? source, string problem)
    {
        string where = row is long r ? $"Column '{column}', row {r}" : $"Column '{column}'";
        if (source != null) where += $" ('{source}')";
        return $"{where}: {problem}";
    }
}
