using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>
/// Reads the pixel-values column (from <c>BeitImageProcessor</c>) of an <see cref="IDataView"/> for the trainers'
/// estimators: every row's float vector, all of one square size, with typed errors naming the trainer and column.
/// </summary>
internal static class PixelColumn
{
    /// <summary>Checks an estimator's input shape: <paramref name="name"/> must be a float vector.</summary>
    public static void CheckShape(SchemaShape inputSchema, string name, string trainer)
    {
        var features = inputSchema.Where(c => c.Name == name).ToList();
        if (features.Count == 0 || features[^1].ItemType != NumberDataViewType.Single || features[^1].Kind == SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentException($"{trainer}: input column '{name}' must be a float vector of pixel values (from BeitImageProcessor).");
    }

    /// <summary>The pixel column, checked to be a float vector.</summary>
    public static DataViewSchema.Column Find(DataViewSchema schema, string name, string trainer)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentException($"{trainer}: input has no column '{name}' (pixel values from BeitImageProcessor).");
        if (column.Type is not VectorDataViewType vt || vt.ItemType != NumberDataViewType.Single)
            throw new ArgumentException($"{trainer}: column '{name}' is {column.Type}, not a float vector of pixel values.");
        return column;
    }

    /// <summary>
    /// Reads every row's pixels; <paramref name="perRow"/> (getters made from the cursor) reads the other columns of a row.
    /// Returns the pixels (<c>rows·3·side·side</c>), the side and the row count.
    /// </summary>
    public static (float[] Pixels, int Side, int Rows) Read(IDataView data, DataViewSchema.Column pixels, IEnumerable<DataViewSchema.Column> others,
        Func<DataViewRowCursor, Action<long>> perRow, int? imageSize, string trainer)
    {
        var values = new List<float>();
        int length = -1;
        long row = 0;
        using (var cursor = data.GetRowCursor(others.Append(pixels)))
        {
            var getPixels = cursor.GetGetter<VBuffer<float>>(pixels);
            var readOthers = perRow(cursor);
            VBuffer<float> buffer = default;
            while (cursor.MoveNext())
            {
                readOthers(row);
                getPixels(ref buffer);
                if (length < 0) length = buffer.Length;
                else if (buffer.Length != length)
                    throw new ArgumentException($"{trainer}: row {row} of '{pixels.Name}' has {buffer.Length} values, earlier rows {length}; preprocess every image to one size.");
                values.AddRange(buffer.DenseValues());
                row++;
            }
        }
        if (row == 0) throw new ArgumentException($"{trainer}: the input has no rows.");
        int side = imageSize ?? (int)Math.Round(Math.Sqrt(length / 3.0));
        if (3L * side * side != length)
            throw new ArgumentException($"{trainer}: {length} pixel values are not 3·{side}·{side}; non-square inputs are not supported, resize to a square.");
        return (values.ToArray(), side, checked((int)row));
    }
}
