using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Beit.Training.ImageClassification;

public sealed partial class BeitImageClassificationTrainer : IEstimator<BeitClassifierTransformer>
{
    // Fit and GetOutputSchema build ML.NET components, which belong to a context: the user's.
    private MLContext Context => TrainingChannel.Require(_mlContext, "ImageClassification");

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
        var ml = Context;
        var train = ReadImages(input, o, null);
        var valid = validation is null ? null : ReadImages(validation, o, train.ClassNames);
        // Messages go to MLContext.Log, as ML.NET's own trainers' do.
        using var channel = TrainingChannel.Start(ml, nameof(BeitImageClassificationTrainer));
        var result = TrainCore(train, valid, cancellationToken, channel);
        LastResult = result;
        return ToTransformer(ml, result.Model, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, precision: o.ExportPrecision);
    }

    /// <summary>The ML.NET scoring transformer of a trained TorchSharp model (exported to ONNX in memory).</summary>
    /// <param name="mlContext">The context the transformer belongs to (its log, seed and GPU device).</param>
    /// <param name="model">The trained model.</param>
    /// <param name="featureColumnName">The pixel-values column.</param>
    /// <param name="scoreColumnName">The class-probabilities column to create.</param>
    /// <param name="predictedLabelColumnName">The predicted-label key column to create.</param>
    /// <param name="logitsColumnName">A logits column to create as well; null for none.</param>
    /// <param name="precision">The exported graph's precision (<see cref="Onnx.BeitOnnxPrecision.Int8"/>: the fastest on the CPU).</param>
    public static BeitClassifierTransformer ToTransformer(MLContext mlContext, BeitForImageClassification model, string featureColumnName = "PixelValues",
        string scoreColumnName = "Score", string predictedLabelColumnName = "PredictedLabel", string? logitsColumnName = null,
        Onnx.BeitOnnxPrecision precision = Onnx.BeitOnnxPrecision.Float32)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var source = BeitModelSource.FromTensors(model.Config, model.ToTensorData(), "trained BEiT");
        var estimator = mlContext.Transforms.BeitClassifier(new BeitClassifierEstimator.Options
        {
            Model = source,
            InputColumnName = featureColumnName,
            ScoreColumnName = scoreColumnName,
            PredictedLabelColumnName = predictedLabelColumnName,
            LogitsColumnName = logitsColumnName,
            ExportOptions = new Onnx.BeitOnnxExportOptions { Precision = precision },
        });
        var empty = mlContext.Data.LoadFromEnumerable(Array.Empty<PixelRow>(), PixelRow.SchemaFor(featureColumnName));
        return estimator.Fit(empty);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = _options;
        var ml = Context;
        PixelColumn.CheckShape(inputSchema, o.FeatureColumnName, nameof(BeitImageClassificationTrainer));
        if (!inputSchema.Any(c => c.Name == o.LabelColumnName && c.IsKey))
            throw new ArgumentException($"BeitImageClassificationTrainer: label column '{o.LabelColumnName}' must be a key column (use MapValueToKey).");
        // The shape of what Fit returns: a score vector and a predicted-label key, added to the input columns.
        const string name = "__beit_predicted_name";
        var shape = ml.Transforms.CustomMapping<EmptyRow, ShapeRow>(static (_, _) => { }, contractName: null)
            .Append(ml.Transforms.Conversion.MapValueToKey(o.PredictedLabelColumnName, name))
            .Append(ml.Transforms.CopyColumns(o.ScoreColumnName, nameof(ShapeRow.Score)))
            .Append(ml.Transforms.DropColumns(name, nameof(ShapeRow.Score)));
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

    // All rows of the pixel and label columns as normalised training images; the label key's values name the classes.
    private static BeitTrainingImages ReadImages(IDataView data, Options o, IReadOnlyList<string>? expectedClasses)
    {
        const string trainer = nameof(BeitImageClassificationTrainer);
        var schema = data.Schema;
        DataViewSchema.Column labelCol = schema.GetColumnOrNull(o.LabelColumnName)
            ?? throw new ArgumentException($"{trainer}: input has no label column '{o.LabelColumnName}'.");
        if (labelCol.Type is not KeyDataViewType keyType)
            throw new ArgumentException($"{trainer}: label column '{o.LabelColumnName}' is {labelCol.Type}, not a key; map it with MapValueToKey.");
        var featureCol = PixelColumn.Find(schema, o.FeatureColumnName, trainer);

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
            throw new ArgumentException($"{trainer}: the validation label key has other values than the training label key.");

        var labels = new List<int>();
        var (pixels, side, _) = PixelColumn.Read(data, featureCol, [labelCol], cursor =>
        {
            var getLabel = cursor.GetGetter<uint>(labelCol);
            uint key = 0;
            return row =>
            {
                getLabel(ref key);
                if (key == 0) throw new ArgumentException($"{trainer}: row {row} has a missing label in '{o.LabelColumnName}'.");
                labels.Add((int)key - 1);
            };
        }, o.ImageSize, trainer);
        return BeitTrainingImages.FromNormalizedPixels(pixels, labels.ToArray(), side, side, names);
    }
}
