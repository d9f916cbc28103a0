using System.Globalization;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Training.SemanticSegmentation;

public sealed partial class BeitSemanticSegmentationTrainer : IEstimator<BeitSegmenterTransformer>
{
    private MLContext Context => TrainingChannel.Require(_mlContext, "SemanticSegmentation");

    /// <summary>The result of the last <see cref="Fit(IDataView)"/>: the TorchSharp model and the per-epoch history.</summary>
    public Result? LastResult { get; private set; }

    /// <summary>
    /// Trains on every row of <paramref name="input"/> (<see cref="Options.FeatureColumnName"/>: pixel values from
    /// <c>BeitImageProcessor</c>; <see cref="Options.LabelColumnName"/>: the label map at the same size, one Byte or
    /// Int32 class index per pixel, row-major, 255 ignored) and returns the <see cref="BeitSegmenterTransformer"/> that
    /// scores it (a class map at the model's input size in <see cref="Options.PredictedLabelColumnName"/>).
    /// </summary>
    public BeitSegmenterTransformer Fit(IDataView input)
    {
        var o = _options;
        var ml = Context;
        var result = Train(ReadImages(input, o), null, default);
        LastResult = result;
        var model = result.Model;
        var estimator = ml.Transforms.BeitSegmenter(new BeitSegmenterEstimator.Options
        {
            Model = BeitModelSource.FromTensors(model.Config, model.ToTensorData(), "trained BEiT segmenter"),
            InputColumnName = o.FeatureColumnName,
            ImageColumnName = null,
            OutputColumnName = o.PredictedLabelColumnName,
            ExportOptions = new Onnx.BeitOnnxExportOptions { Precision = o.ExportPrecision },
        });
        return estimator.Fit(ml.Data.LoadFromEnumerable(Array.Empty<PixelRow>(), PixelRow.SchemaFor(o.FeatureColumnName)));
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = _options;
        var ml = Context;
        PixelColumn.CheckShape(inputSchema, o.FeatureColumnName, nameof(BeitSemanticSegmentationTrainer));
        if (!inputSchema.Any(c => c.Name == o.LabelColumnName && c.Kind != SchemaShape.Column.VectorKind.Scalar))
            throw new ArgumentException($"BeitSemanticSegmentationTrainer: label column '{o.LabelColumnName}' must be a vector (one class index per pixel).");
        // The shape of what Fit returns: an Int32 class map and its [height, width].
        var shape = ml.Transforms.CustomMapping<EmptyRow, MapRow>(static (_, _) => { }, contractName: null)
            .Append(ml.Transforms.CopyColumns(o.PredictedLabelColumnName, nameof(MapRow.BeitMap)))
            .Append(ml.Transforms.CopyColumns("PredictedLabelSize", nameof(MapRow.BeitMapSize)))
            .Append(ml.Transforms.DropColumns(nameof(MapRow.BeitMap), nameof(MapRow.BeitMapSize)));
        return shape.GetOutputSchema(inputSchema);
    }

    private sealed class EmptyRow
    {
    }

    private sealed class MapRow
    {
        public int[] BeitMap { get; set; } = [];
        [VectorType(2)] public int[] BeitMapSize { get; set; } = [];
    }

    // All rows as normalised images with byte label maps; class names from the options or 0..max label.
    private static BeitSegmentationImages ReadImages(IDataView data, Options o)
    {
        const string trainer = nameof(BeitSemanticSegmentationTrainer);
        var labelCol = data.Schema.GetColumnOrNull(o.LabelColumnName)
            ?? throw new ArgumentException($"{trainer}: input has no label column '{o.LabelColumnName}'.");
        if (labelCol.Type is not VectorDataViewType { ItemType: var item } || (item != NumberDataViewType.Byte && item != NumberDataViewType.Int32))
            throw new ArgumentException($"{trainer}: label column '{o.LabelColumnName}' is {labelCol.Type}, not a vector of Byte or Int32 class indices.");
        var pixelCol = PixelColumn.Find(data.Schema, o.FeatureColumnName, trainer);
        var maps = new List<byte>();
        int max = -1;
        var (pixels, side, rows) = PixelColumn.Read(data, pixelCol, [labelCol], cursor =>
        {
            if (item == NumberDataViewType.Byte)
            {
                var getBytes = cursor.GetGetter<VBuffer<byte>>(labelCol);
                VBuffer<byte> bytes = default;
                return row =>
                {
                    getBytes(ref bytes);
                    foreach (var v in bytes.DenseValues()) { maps.Add(v); if (v != 255) max = Math.Max(max, v); }
                };
            }
            var getInts = cursor.GetGetter<VBuffer<int>>(labelCol);
            VBuffer<int> ints = default;
            return row =>
            {
                getInts(ref ints);
                foreach (var v in ints.DenseValues())
                {
                    if ((uint)v > 255) throw new ArgumentException($"{trainer}: row {row} of '{o.LabelColumnName}' has label {v}; labels are 0..254, 255 ignored.");
                    maps.Add((byte)v);
                    if (v != 255) max = Math.Max(max, v);
                }
            };
        }, o.ImageSize, trainer);
        if ((long)maps.Count != (long)rows * side * side)
            throw new ArgumentException($"{trainer}: '{o.LabelColumnName}' must hold {side}·{side} labels per row, the pixel values' size.");
        var names = o.ClassNames ?? Enumerable.Range(0, max + 1).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        return BeitSegmentationImages.FromNormalizedPixels(pixels, maps.ToArray(), rows, side, side, names);
    }
}
