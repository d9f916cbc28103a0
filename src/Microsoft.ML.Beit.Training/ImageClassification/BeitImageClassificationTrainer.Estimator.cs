using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Beit.Training.ImageClassification;

public sealed partial class BeitImageClassificationTrainer : IEstimator<BeitClassifierTransformer>
{
    private static readonly MLContext s_ml = new();

    /// <summary>The ML.NET environment whose log receives training messages (set by the catalog extension).</summary>
    internal IHostEnvironment? Environment { get; init; }

    /// <summary>The result of the last <see cref="Fit(IDataView)"/>: the TorchSharp model and the per-epoch history.</summary>
    public Result? LastResult { get; private set; }

    /// <summary>
    /// Reads every row of <paramref name="input"/> (<see cref="Options.FeatureColumnName"/>: pixel values from
    /// <c>BeitImageProcessor</c>; <see cref="Options.LabelColumnName"/>: a key column), trains, exports the
    /// model to ONNX and returns the <see cref="BeitClassifierTransformer"/> that scores it: <c>Score</c> and a
    /// <c>PredictedLabel</c> key with the same values as the label key, ready for
    /// <c>mlContext.MulticlassClassification.Evaluate</c> and <c>mlContext.Model.Save</c>.
    /// </summary>
    public BeitClassifierTransformer Fit(IDataView input) => Fit(input, null, default);

    /// <summary><see cref="Fit(IDataView)"/> with an explicit validation set and cancellation.</summary>
    /// <exception cref="OperationCanceledException">Cancelled within one batch; nothing is written.</exception>
    public BeitClassifierTransformer Fit(IDataView input, IDataView? validation, CancellationToken cancellationToken)
    {
        // Fit ends in an ONNX Runtime session: check for the native runtime before the first epoch, not after the last.
        Scoring.BeitOnnxRuntime.EnsureAvailable(nameof(BeitImageClassificationTrainer));
        var o = _options;
        var train = ReadImages(input, o, null);
        var valid = validation is null ? null : ReadImages(validation, o, train.ClassNames);
        // Messages go to MLContext.Log when the trainer came from the catalog, as ML.NET's own trainers' do.
        using var channel = Environment?.Register(nameof(BeitImageClassificationTrainer)).Start("Training");
        var result = TrainCore(train, valid, cancellationToken, channel);
        LastResult = result;
        return ToTransformer(result.Model, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, precision: o.ExportPrecision);
    }

    /// <summary>The ML.NET scoring transformer of a trained TorchSharp model (exported to ONNX in memory).</summary>
    /// <param name="model">The trained model.</param>
    /// <param name="featureColumnName">The pixel-values column.</param>
    /// <param name="scoreColumnName">The class-probabilities column to create.</param>
    /// <param name="predictedLabelColumnName">The predicted-label key column to create.</param>
    /// <param name="logitsColumnName">A logits column to create as well; null for none.</param>
    /// <param name="precision">The exported graph's precision (<see cref="Onnx.BeitOnnxPrecision.Int8"/>: the fastest on the CPU).</param>
    public static BeitClassifierTransformer ToTransformer(BeitForImageClassification model, string featureColumnName = "PixelValues",
        string scoreColumnName = "Score", string predictedLabelColumnName = "PredictedLabel", string? logitsColumnName = null,
        Onnx.BeitOnnxPrecision precision = Onnx.BeitOnnxPrecision.Float32)
    {
        var source = BeitModelSource.FromTensors(model.Config, model.ToTensorData(), "trained BEiT");
        var estimator = s_ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options
        {
            Model = source,
            InputColumnName = featureColumnName,
            ScoreColumnName = scoreColumnName,
            PredictedLabelColumnName = predictedLabelColumnName,
            LogitsColumnName = logitsColumnName,
            ExportOptions = new Onnx.BeitOnnxExportOptions { Precision = precision },
        });
        var empty = s_ml.Data.LoadFromEnumerable(Array.Empty<PixelRow>(), SchemaFor(featureColumnName));
        return estimator.Fit(empty);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = _options;
        var features = inputSchema.Where(c => c.Name == o.FeatureColumnName).ToList();
        if (features.Count == 0 || features[^1].ItemType != NumberDataViewType.Single || features[^1].Kind == SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentException($"BeitImageClassificationTrainer: input column '{o.FeatureColumnName}' must be a float vector of pixel values (from BeitImageProcessor).");
        if (!inputSchema.Any(c => c.Name == o.LabelColumnName && c.IsKey))
            throw new ArgumentException($"BeitImageClassificationTrainer: label column '{o.LabelColumnName}' must be a key column (use MapValueToKey).");
        // The shape of what Fit returns: a score vector and a predicted-label key, added to the input columns.
        const string name = "__beit_predicted_name";
        var shape = s_ml.Transforms.CustomMapping<EmptyRow, ShapeRow>(static (_, _) => { }, contractName: null)
            .Append(s_ml.Transforms.Conversion.MapValueToKey(o.PredictedLabelColumnName, name))
            .Append(s_ml.Transforms.CopyColumns(o.ScoreColumnName, nameof(ShapeRow.Score)))
            .Append(s_ml.Transforms.DropColumns(name, nameof(ShapeRow.Score)));
        return shape.GetOutputSchema(inputSchema);
    }

    private sealed class EmptyRow
    {
    }

    private sealed class ShapeRow
    {
        [VectorType(1)] public float[] Score { get; set; } = [];
        [ColumnName("__beit_predicted_name")] public string PredictedName { get; set; } = "";
    }

    private sealed class PixelRow
    {
        public float[] PixelValues { get; set; } = [];
    }

    private static SchemaDefinition SchemaFor(string column)
    {
        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema[nameof(PixelRow.PixelValues)].ColumnName = column;
        return schema;
    }

    // All rows of the pixel and label columns as normalised training images; the label key's values name the classes.
    private static BeitTrainingImages ReadImages(IDataView data, Options o, IReadOnlyList<string>? expectedClasses)
    {
        var schema = data.Schema;
        DataViewSchema.Column featureCol = schema.GetColumnOrNull(o.FeatureColumnName)
            ?? throw new ArgumentException($"BeitImageClassificationTrainer: input has no column '{o.FeatureColumnName}' (pixel values from BeitImageProcessor).");
        DataViewSchema.Column labelCol = schema.GetColumnOrNull(o.LabelColumnName)
            ?? throw new ArgumentException($"BeitImageClassificationTrainer: input has no label column '{o.LabelColumnName}'.");
        if (labelCol.Type is not KeyDataViewType keyType)
            throw new ArgumentException($"BeitImageClassificationTrainer: label column '{o.LabelColumnName}' is {labelCol.Type}, not a key; map it with MapValueToKey.");
        if (featureCol.Type is not VectorDataViewType { ItemType: NumberDataViewType } vt || vt.ItemType != NumberDataViewType.Single)
            throw new ArgumentException($"BeitImageClassificationTrainer: column '{o.FeatureColumnName}' is {featureCol.Type}, not a float vector of pixel values.");

        var names = new List<string>();
        if (labelCol.HasKeyValues())
        {
            VBuffer<ReadOnlyMemory<char>> keyValues = default;
            labelCol.GetKeyValues(ref keyValues);
            names.AddRange(keyValues.DenseValues().Select(v => v.ToString()));
        }
        else
        {
            names.AddRange(Enumerable.Range(0, (int)keyType.Count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        if (expectedClasses is not null && !expectedClasses.SequenceEqual(names))
            throw new ArgumentException("BeitImageClassificationTrainer: the validation label key has other values than the training label key.");

        var pixels = new List<float>();
        var labels = new List<int>();
        int length = -1;
        long row = 0;
        using (var cursor = data.GetRowCursor([featureCol, labelCol]))
        {
            var getPixels = cursor.GetGetter<VBuffer<float>>(featureCol);
            var getLabel = cursor.GetGetter<uint>(labelCol);
            VBuffer<float> buffer = default;
            uint key = 0;
            while (cursor.MoveNext())
            {
                getLabel(ref key);
                if (key == 0) throw new ArgumentException($"BeitImageClassificationTrainer: row {row} has a missing label in '{o.LabelColumnName}'.");
                getPixels(ref buffer);
                if (length < 0) length = buffer.Length;
                else if (buffer.Length != length)
                    throw new ArgumentException($"BeitImageClassificationTrainer: row {row} of '{o.FeatureColumnName}' has {buffer.Length} values, earlier rows {length}; preprocess every image to one size.");
                pixels.AddRange(buffer.DenseValues());
                labels.Add((int)key - 1);
                row++;
            }
        }
        if (labels.Count == 0) throw new ArgumentException("BeitImageClassificationTrainer: the input has no rows.");
        int side = o.ImageSize ?? (int)Math.Round(Math.Sqrt(length / 3.0));
        if (3 * side * side != length)
            throw new ArgumentException($"BeitImageClassificationTrainer: {length} pixel values are not 3·{side}·{side}; set Options.ImageSize for non-square inputs is not supported, resize to a square.");
        return BeitTrainingImages.FromNormalizedPixels(pixels.ToArray(), labels.ToArray(), side, side, names);
    }
}
