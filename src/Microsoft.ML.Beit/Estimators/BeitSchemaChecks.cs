using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>Input checks with messages in the user's terms (the stage and the user's column), before ML.NET sees internal names.</summary>
internal static class BeitSchemaChecks
{
    public static DataViewSchema.Column Require(DataViewSchema schema, string column, string stage, Func<DataViewType, bool> ok, string expected)
    {
        var c = schema.GetColumnOrNull(column)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"{stage}: the input has no column '{column}' ({expected} expected).");
        if (!ok(c.Type)) throw new ArgumentOutOfRangeException(nameof(schema), $"{stage}: column '{column}' is {c.Type}; {expected} expected.");
        return c;
    }

    public static SchemaShape.Column Require(SchemaShape schema, string column, string stage, Func<SchemaShape.Column, bool> ok, string expected)
    {
        var matches = schema.Where(c => c.Name == column).ToList();
        if (matches.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(schema), $"{stage}: the input has no column '{column}' ({expected} expected).");
        var found = matches[^1];
        if (!ok(found))
            throw new ArgumentOutOfRangeException(nameof(schema), $"{stage}: column '{column}' is a {found.Kind} of {found.ItemType}{(found.IsKey ? " keys" : "")}; {expected} expected.");
        return found;
    }

    public static bool IsFloatVector(DataViewType t) => t is VectorDataViewType v && v.ItemType == NumberDataViewType.Single;

    public static bool IsFloatVector(SchemaShape.Column c) => c.Kind != SchemaShape.Column.VectorKind.Scalar && c.ItemType == NumberDataViewType.Single && !c.IsKey;

    public static bool IsByteVector(DataViewType t) => t is VectorDataViewType v && v.ItemType == NumberDataViewType.Byte;

    public static bool IsByteVector(SchemaShape.Column c) => c.Kind != SchemaShape.Column.VectorKind.Scalar && c.ItemType == NumberDataViewType.Byte && !c.IsKey;

    /// <summary>Fails early when a known-size pixel column cannot be the model's input.</summary>
    public static void CheckPixelCount(DataViewSchema.Column column, int expected, string stage)
    {
        if (column.Type is VectorDataViewType { IsKnownSize: true } v && v.Size != expected)
            throw new ArgumentOutOfRangeException(nameof(column),
                $"{stage}: column '{column.Name}' holds {v.Size} values per row, but the model takes {expected}.");
    }
}
