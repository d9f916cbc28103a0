using System.Globalization;
using System.Text;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Evaluation;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Training.ImageClassification;

/// <summary>What <see cref="BeitModelBuilder"/> trained and measured.</summary>
/// <param name="ModelPath">The saved <c>model.zip</c>.</param>
/// <param name="Training">The trainer's result (TorchSharp model and per-epoch history).</param>
/// <param name="Test">Confusion matrix of the saved model on the held-out test images (scored through ONNX Runtime).</param>
/// <param name="TrainCount">Images trained on (validation excluded).</param>
/// <param name="TestCount">Held-out test images.</param>
/// <param name="TrainingTime">Wall time of training.</param>
public sealed record BeitModelBuilderReport(string ModelPath, BeitImageClassificationTrainer.Result Training, ConfusionMatrixMetrics Test,
    int TrainCount, int TestCount, TimeSpan TrainingTime)
{
    /// <summary>Images held out from the training images to validate each epoch (not trained on, not the test set).</summary>
    public int ValidationCount { get; init; }

    /// <summary>A short human-readable report: data, time, throughput, the automatically chosen settings, test accuracy, macro-F1 and the confusion matrix.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        var last = Training.History[^1];
        sb.AppendLine(CultureInfo.InvariantCulture, $"Trained on {TrainCount:N0} images (validated on {ValidationCount:N0} more) for {Training.History.Count} epochs in {TrainingTime:hh\\:mm\\:ss} ({last.ImagesPerSecond:F0} img/s in the last epoch); kept epoch {Training.BestEpoch}.");
        foreach (var note in Training.Notes) sb.AppendLine("  " + note);
        if (Training.Search is BeitSearchReport search) sb.AppendLine(search.ToString());
        sb.AppendLine(CultureInfo.InvariantCulture, $"Test ({TestCount:N0} held-out images, scored from {Path.GetFileName(ModelPath)}): accuracy {Test.Accuracy:P2}, macro-F1 {Test.MacroF1:F4}.");
        sb.AppendLine("Per class (precision / recall / F1):");
        for (int c = 0; c < Test.NumClasses; c++)
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {Test.ClassNames[c],-16} {Test.Precision(c):F3} / {Test.Recall(c):F3} / {Test.F1(c):F3}");
        sb.AppendLine("Confusion matrix (rows: truth, columns: prediction):");
        sb.Append(Test.ToText());
        return sb.ToString();
    }

    /// <summary>
    /// The report as indented JSON: counts, time, the chosen settings' notes, the time budget with every search trial,
    /// the per-epoch history of the final run, and test accuracy, macro-F1 and the confusion matrix.
    /// </summary>
    public string ToJson()
    {
        static double? N(double v) => double.IsNaN(v) || double.IsInfinity(v) ? null : v;
        var search = Training.Search is BeitSearchReport s ? System.Text.Json.JsonDocument.Parse(s.ToJson()).RootElement : (System.Text.Json.JsonElement?)null;
        return System.Text.Json.JsonSerializer.Serialize(new
        {
            model = ModelPath,
            trainCount = TrainCount,
            validationCount = ValidationCount,
            testCount = TestCount,
            trainingSeconds = TrainingTime.TotalSeconds,
            keptEpoch = Training.BestEpoch,
            notes = Training.Notes,
            search,
            history = Training.History.Select(h => new
            {
                epoch = h.Epoch, trainLoss = N(h.TrainLoss), validationLoss = N(h.ValidationLoss), validationAccuracy = N(h.ValidationAccuracy),
                seconds = h.Elapsed.TotalSeconds, imagesPerSecond = N(h.ImagesPerSecond),
            }),
            test = new
            {
                accuracy = Test.Accuracy, macroF1 = Test.MacroF1, classes = Test.ClassNames,
                confusion = Enumerable.Range(0, Test.NumClasses).Select(t => Enumerable.Range(0, Test.NumClasses).Select(p => Test[t, p]).ToArray()),
            },
        }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }
}

/// <summary>
/// Model Builder-style image classification: split off a stratified test set, train a BEiT (fine-tuned from a
/// checkpoint or from scratch with a configuration suited to the data), save a <c>model.zip</c> whose pipeline takes
/// image paths or image bytes (<c>ImagePath</c> or <c>ImageSource</c> → decode → Pillow-exact preprocessing → ONNX
/// classifier → <c>Score</c> and a string <c>PredictedLabel</c>), reload it, and evaluate it on the test images.
/// </summary>
public static class BeitModelBuilder
{
    /// <summary>Name of the input column of saved models: the path of an image file.</summary>
    public const string ImagePathColumn = "ImagePath";

    /// <summary>Trains from a folder of class subfolders and writes <paramref name="modelPath"/>.</summary>
    /// <param name="mlContext">The context whose log receives training messages and which saves, loads and evaluates the model.</param>
    /// <param name="folder">One subfolder per class.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write (atomically; nothing is written on failure or cancellation).</param>
    /// <param name="options">Trainer options; <see cref="BeitTrainerOptions.ImageSize"/> sets the side of a new model.</param>
    /// <param name="testFraction">Fraction of each class held out for the test report.</param>
    /// <param name="cancellationToken">Stops training within one batch.</param>
    public static BeitModelBuilderReport TrainFromFolder(MLContext mlContext, string folder, string modelPath, BeitImageClassificationTrainer.Options options,
        double testFraction = 0.1, CancellationToken cancellationToken = default)
    {
        int size = options.ImageSize ?? (options.CheckpointFolder is string ckpt ? BeitConfig.Load(ckpt).ImageSize : 224);
        var loaded = BeitImageFolder.Load(folder, size, cancellationToken: cancellationToken);
        var (train, test) = loaded.Images.Split(testFraction, options.Seed + 1);
        return Train(mlContext, train, test, modelPath, options, cancellationToken);
    }

    /// <summary>Trains on <paramref name="train"/>, saves <paramref name="modelPath"/> (image paths in), reloads it and evaluates it on <paramref name="test"/>.</summary>
    public static BeitModelBuilderReport Train(MLContext mlContext, BeitTrainingImages train, BeitTrainingImages test, string modelPath,
        BeitImageClassificationTrainer.Options options, CancellationToken cancellationToken = default) =>
        Train(mlContext, train, test, modelPath, options, BeitPipelines.ImageInput.Paths, cancellationToken);

    /// <summary>
    /// Trains on <paramref name="train"/>, saves <paramref name="modelPath"/> taking <paramref name="input"/> (an image path or
    /// Model Builder's <c>byte[] ImageSource</c>), reloads it and evaluates it on <paramref name="test"/> through that input
    /// (ML.NET's multiclass evaluator counts the confusion table).
    /// </summary>
    public static BeitModelBuilderReport Train(MLContext mlContext, BeitTrainingImages train, BeitTrainingImages test, string modelPath,
        BeitImageClassificationTrainer.Options options, BeitPipelines.ImageInput input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        // Fail before the first epoch, not after the last, when the outputs cannot be written.
        AtomicFile.CheckWritable(modelPath);
        // The saved model is reloaded and evaluated through ONNX Runtime: no native runtime fails now.
        Scoring.BeitOnnxRuntime.EnsureAvailable(nameof(BeitModelBuilder));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = new BeitImageClassificationTrainer(mlContext, options).Train(train, null, cancellationToken);
        var elapsed = clock.Elapsed;
        cancellationToken.ThrowIfCancellationRequested();
        Save(mlContext, result.Model, modelPath, options.ExportPrecision, input);

        var ml = mlContext;
        var loaded = BeitModelZip.Load(ml, modelPath, out _);
        ConfusionMatrixMetrics cm;
        using (loaded as IDisposable)
            cm = Evaluate(ml, loaded, test, input);
        return new BeitModelBuilderReport(Path.GetFullPath(modelPath), result, cm, result.TrainCount, test.Count, elapsed) { ValidationCount = result.ValidationCount };
    }

    /// <summary>
    /// Saves a trained model as <c>model.zip</c>: <c>ImagePath</c> (or <c>ImageSource</c> bytes) → <c>LoadBeitImages</c> →
    /// <c>BeitImageProcessor</c> (resize to the model's size, bicubic, mean/std 0.5, as the trainer saw the images) →
    /// <c>BeitClassifier</c> → <c>MapKeyToValue("PredictedLabel")</c>, so a Model Builder-style
    /// <c>ModelOutput { string PredictedLabel; float[] Score; }</c> reads it. No <c>Label</c> column is needed to predict.
    /// </summary>
    /// <param name="mlContext">The context that builds and saves the pipeline.</param>
    /// <param name="model">The trained model.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write (atomically).</param>
    /// <param name="precision">The ONNX graph's precision (<see cref="Onnx.BeitOnnxPrecision.Int8"/>: the fastest on the CPU, about 4× smaller).</param>
    /// <param name="input">The input column: an image path (<c>ImagePath</c>) or encoded image bytes (<c>ImageSource</c>).</param>
    public static void Save(MLContext mlContext, BeitForImageClassification model, string modelPath, Onnx.BeitOnnxPrecision precision = Onnx.BeitOnnxPrecision.Float32,
        BeitPipelines.ImageInput input = BeitPipelines.ImageInput.Paths)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        var options = BeitModelInputs.Options(input);
        options.ExportOptions = new Onnx.BeitOnnxExportOptions { Precision = precision };
        BeitModelInputs.SaveClassifier(mlContext, BeitModelSource.FromTensors(model.Config, model.ToTensorData(), "trained BEiT"), modelPath, options);
    }

    // Scores the test images through the loaded pipeline, from PNG files or PNG bytes of the in-memory images as the
    // model's input asks; ML.NET's multiclass evaluator counts the confusion table from the string PredictedLabel.
    private static ConfusionMatrixMetrics Evaluate(MLContext ml, ITransformer loaded, BeitTrainingImages test, BeitPipelines.ImageInput input)
    {
        var cm = new ConfusionMatrixMetrics(test.ClassNames);
        string dir = BeitTempFiles.NewFolder("eval");
        try
        {
            int pixels = 3 * test.Height * test.Width;
            var files = new string[test.Count];
            var truth = new string[test.Count];
            for (int i = 0; i < test.Count; i++)
            {
                files[i] = Path.Combine(dir, i.ToString(CultureInfo.InvariantCulture) + ".png");
                truth[i] = test.ClassNames[test.Labels[i]];
                PngWriter.WriteRgb(files[i], test.Pixels.AsSpan(i * pixels, pixels), test.Height, test.Width);
            }
            IDataView rows = input == BeitPipelines.ImageInput.Bytes
                ? ml.Data.LoadFromEnumerable(files.Select((f, i) => new BytesRow { ImageSource = File.ReadAllBytes(f), Label = truth[i] }).ToArray())
                : ml.Data.LoadFromEnumerable(files.Select((f, i) => new PathRow { ImagePath = f, Label = truth[i] }).ToArray());
            var scored = loaded.Transform(rows);
            // Truth and prediction as keys over the model's label values (the Score order), so the evaluator lines them up.
            var labelNames = BeitClassifierTransformer.FromLoaded(loaded).LabelNames;
            var keyData = ml.Data.LoadFromEnumerable(labelNames.Select(n => new LabelRow { Label = n }));
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keyData)
                .Append(ml.Transforms.Conversion.MapValueToKey("PredictedKey", "PredictedLabel", keyData: keyData))
                .Fit(scored).Transform(scored);
            var counts = ml.MulticlassClassification.Evaluate(keyed, "Label", "Score", "PredictedKey").ConfusionMatrix.Counts;
            var index = test.ClassNames.Select((n, i) => (n, i)).ToDictionary(t => t.n, t => t.i);
            for (int t = 0; t < counts.Count; t++)
                for (int p = 0; p < counts[t].Count; p++)
                    for (long n = (long)counts[t][p]; n > 0; n--) cm.Add(index[labelNames[t]], index[labelNames[p]]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
        return cm;
    }

    private sealed class LabelRow
    {
        public string Label { get; set; } = "";
    }

    private sealed class BytesRow
    {
        public byte[] ImageSource { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }
}
