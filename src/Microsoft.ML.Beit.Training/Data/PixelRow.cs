using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>A row type for the empty pixel-values view the trainers fit their scoring transformers on.</summary>
internal sealed class PixelRow
{
    public float[] PixelValues { get; set; } = [];

    /// <summary>The schema of <see cref="PixelRow"/> with its column renamed to <paramref name="column"/>.</summary>
    public static SchemaDefinition SchemaFor(string column)
    {
        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema[nameof(PixelValues)].ColumnName = column;
        return schema;
    }
}
