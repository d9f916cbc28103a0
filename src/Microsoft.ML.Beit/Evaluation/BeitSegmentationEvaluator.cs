using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Evaluation;

/// <summary>Semantic segmentation metrics over every pixel of a data set (ignored pixels excluded).</summary>
public sealed class BeitSegmentationMetrics
{
    internal BeitSegmentationMetrics(ConfusionMatrixMetrics matrix) => ConfusionMatrix = matrix;

    /// <summary>Mean intersection over union over the classes that occur or are predicted (mmseg's and Hugging Face evaluate's <c>mean_iou</c>).</summary>
    public double MeanIoU => ConfusionMatrix.MeanIoU;

    /// <summary>Fraction of (non-ignored) pixels predicted correctly.</summary>
    public double PixelAccuracy => ConfusionMatrix.Accuracy;

    /// <summary>Mean per-class pixel accuracy (recall) over the classes that occur.</summary>
    public double MeanAccuracy => ConfusionMatrix.MeanAccuracy;

    /// <summary>IoU per class index; NaN for a class that neither occurs nor is predicted.</summary>
    public IReadOnlyList<double> PerClassIoU => Enumerable.Range(0, ConfusionMatrix.NumClasses).Select(ConfusionMatrix.IoU).ToArray();

    /// <summary>Pixels counted.</summary>
    public long Pixels => ConfusionMatrix.Total;

    /// <summary>The per-pixel confusion matrix (rows: truth, columns: prediction).</summary>
    public ConfusionMatrixMetrics ConfusionMatrix { get; }
}

/// <summary>
/// Mean IoU and pixel accuracy for the per-pixel class maps of <c>BeitSegmenter</c> (ML.NET has no segmentation
/// metrics). The ground truth is either a vector column of class indices (same length and layout as the prediction)
/// or a text column of label-map image paths, decoded as <c>np.array(Image.open(f))</c> does.
/// </summary>
internal static class BeitSegmentationEvaluator
{
    /// <summary>Evaluates <paramref name="data"/>.</summary>
    /// <param name="data">Scored data holding both columns.</param>
    /// <param name="classNames">The classes, by index (e.g. <c>BeitSegmenterTransformer.LabelNames</c>).</param>
    /// <param name="labelColumnName">Ground truth: a numeric vector of class indices, or a text column of label-map paths.</param>
    /// <param name="predictedLabelColumnName">The predicted class map (a numeric vector).</param>
    /// <param name="ignoreIndex">Ground-truth value to skip (Hugging Face's <c>semantic_loss_ignore_index</c>, 255).</param>
    /// <param name="reduceLabels">Apply <c>do_reduce_labels</c> to the ground truth first (0 → ignored, v → v − 1), as for ADE20K maps.</param>
    /// <exception cref="InvalidDataException">A row's maps differ in size or hold a class outside <paramref name="classNames"/>; the message names the row.</exception>
    public static BeitSegmentationMetrics Evaluate(IDataView data, IReadOnlyList<string> classNames, string labelColumnName = "Label",
        string predictedLabelColumnName = "PredictedLabel", int ignoreIndex = 255, bool reduceLabels = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(classNames);
        var truthColumn = data.Schema.GetColumnOrNull(labelColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(labelColumnName), $"The data has no label column '{labelColumnName}'.");
        var predictedColumn = data.Schema.GetColumnOrNull(predictedLabelColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(predictedLabelColumnName), $"The data has no predicted-label column '{predictedLabelColumnName}'.");
        var matrix = new ConfusionMatrixMetrics(classNames);
        using var cursor = data.GetRowCursor([truthColumn, predictedColumn]);
        var truth = Reader(cursor, truthColumn, allowPaths: true);
        var predicted = Reader(cursor, predictedColumn, allowPaths: false);
        while (cursor.MoveNext())
        {
            int[] t = truth(), p = predicted();
            if (t.Length != p.Length)
                throw new InvalidDataException($"Row {cursor.Position}: column '{labelColumnName}' holds {t.Length} pixels but '{predictedLabelColumnName}' holds {p.Length}.");
            if (reduceLabels)
                for (int i = 0; i < t.Length; i++) t[i] = t[i] == 0 || t[i] == 255 ? 255 : t[i] - 1;
            try
            {
                matrix.AddMaps(t, p, ignoreIndex);
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new InvalidDataException($"Row {cursor.Position}: {e.Message.Split(" (Parameter")[0]}", e);
            }
        }
        return new BeitSegmentationMetrics(matrix);
    }

    private static Func<int[]> Reader(DataViewRowCursor cursor, DataViewSchema.Column column, bool allowPaths)
    {
        if (allowPaths && column.Type is TextDataViewType)
        {
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> path = default;
            return () =>
            {
                getter(ref path);
                return Array.ConvertAll(ImageDecoder.DecodeLabelMap(path.ToString()).Labels, v => (int)v);
            };
        }
        if (column.Type is not VectorDataViewType vector)
            throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is {column.Type}; a vector of class indices{(allowPaths ? " or label-map paths" : "")} is expected.");
        return vector.ItemType.RawType switch
        {
            var t when t == typeof(byte) => Vector<byte>(cursor, column, v => v),
            var t when t == typeof(int) => Vector<int>(cursor, column, v => v),
            var t when t == typeof(uint) => Vector<uint>(cursor, column, v => checked((int)v)),
            var t when t == typeof(long) => Vector<long>(cursor, column, v => checked((int)v)),
            var t when t == typeof(float) => Vector<float>(cursor, column, v => (int)v),
            var t when t == typeof(double) => Vector<double>(cursor, column, v => (int)v),
            _ => throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is {column.Type}; class indices must be numbers."),
        };
    }

    private static Func<int[]> Vector<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, int> convert)
    {
        var getter = cursor.GetGetter<VBuffer<T>>(column);
        VBuffer<T> buffer = default;
        return () =>
        {
            getter(ref buffer);
            var dense = buffer.DenseValues().ToArray();
            return Array.ConvertAll(dense, v => convert(v));
        };
    }
}
