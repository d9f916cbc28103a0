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
/// image paths (<c>ImagePath</c> → decode → Pillow-exact preprocessing → ONNX classifier → <c>PredictedLabel</c>),
/// reload it, and evaluate it on the test images.
/// </summary>
public static class BeitModelBuilder
{
    /// <summary>Name of the input column of saved models: the path of an image file.</summary>
    public const string ImagePathColumn = "ImagePath";

    /// <summary>Trains from a folder of class subfolders and writes <paramref name="modelPath"/>.</summary>
    /// <param name="folder">One subfolder per class.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write (atomically; nothing is written on failure or cancellation).</param>
    /// <param name="options">Trainer options; <see cref="BeitTrainerOptions.ImageSize"/> sets the side of a new model.</param>
    /// <param name="testFraction">Fraction of each class held out for the test report.</param>
    /// <param name="cancellationToken">Stops training within one batch.</param>
    public static BeitModelBuilderReport TrainFromFolder(string folder, string modelPath, BeitImageClassificationTrainer.Options options,
        double testFraction = 0.1, CancellationToken cancellationToken = default)
    {
        int size = options.ImageSize ?? (options.CheckpointFolder is string ckpt ? BeitConfig.Load(ckpt).ImageSize : 224);
        var loaded = BeitImageFolder.Load(folder, size, cancellationToken: cancellationToken);
        var (train, test) = loaded.Images.Split(testFraction, options.Seed + 1);
        return Train(train, test, modelPath, options, cancellationToken);
    }

    /// <summary>Trains on <paramref name="train"/>, saves <paramref name="modelPath"/>, reloads it and evaluates it on <paramref name="test"/>.</summary>
    public static BeitModelBuilderReport Train(BeitTrainingImages train, BeitTrainingImages test, string modelPath,
        BeitImageClassificationTrainer.Options options, CancellationToken cancellationToken = default)
    {
        // Fail before the first epoch, not after the last, when the outputs cannot be written.
        AtomicFile.CheckWritable(modelPath);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = new BeitImageClassificationTrainer(options).Train(train, null, cancellationToken);
        var elapsed = clock.Elapsed;
        cancellationToken.ThrowIfCancellationRequested();
        Save(result.Model, modelPath, options.ExportPrecision);

        var ml = new MLContext(seed: 0);
        var loaded = BeitModelZip.Load(ml, modelPath, out _);
        ConfusionMatrixMetrics cm;
        using (loaded as IDisposable)
            cm = Evaluate(ml, loaded, test, BeitClassifierTransformer.FromLoaded(loaded).LabelNames);
        return new BeitModelBuilderReport(Path.GetFullPath(modelPath), result, cm, result.TrainCount, test.Count, elapsed) { ValidationCount = result.ValidationCount };
    }

    /// <summary>
    /// Saves a trained model as <c>model.zip</c>: <c>ImagePath</c> → <c>LoadBeitImages</c> → <c>BeitImageProcessor</c>
    /// (resize to the model's size, bicubic, mean/std 0.5, as the trainer saw the images) → <c>BeitClassifier</c>.
    /// </summary>
    /// <param name="model">The trained model.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write (atomically).</param>
    /// <param name="precision">The ONNX graph's precision (<see cref="Onnx.BeitOnnxPrecision.Int8"/>: the fastest on the CPU, about 4× smaller).</param>
    public static void Save(BeitForImageClassification model, string modelPath, Onnx.BeitOnnxPrecision precision = Onnx.BeitOnnxPrecision.Float32)
    {
        var ml = new MLContext(seed: 0);
        var paths = ml.Data.LoadFromEnumerable(Array.Empty<PathRow>());
        var preprocessing = ml.Transforms.LoadBeitImages("Image", ImagePathColumn)
            .Append(ml.Transforms.BeitImageProcessor(new BeitImageProcessorEstimator.Options
            {
                InputColumnName = "Image",
                OutputColumnName = "PixelValues",
                Processor = BeitImageProcessorEstimator.ForConfig(model.Config),
            }))
            .Fit(paths);
        using var classifier = BeitImageClassificationTrainer.ToTransformer(model, precision: precision);
        var chain = new TransformerChain<ITransformer>(preprocessing, classifier);
        AtomicFile.Write(modelPath, tmp => ml.Model.Save(chain, paths.Schema, tmp));
    }

    // Scores the test images through the loaded pipeline from PNG bytes of the in-memory images.
    private static ConfusionMatrixMetrics Evaluate(MLContext ml, ITransformer loaded, BeitTrainingImages test, IReadOnlyList<string> labelNames)
    {
        var cm = new ConfusionMatrixMetrics(test.ClassNames);
        string dir = BeitTempFiles.NewFolder("eval");
        try
        {
            var rows = new PathRow[test.Count];
            for (int i = 0; i < test.Count; i++)
            {
                rows[i] = new PathRow { ImagePath = Path.Combine(dir, i.ToString(CultureInfo.InvariantCulture) + ".png") };
                PngWriter.WriteRgb(rows[i].ImagePath, test.Pixels.AsSpan(i * 3 * test.Height * test.Width, 3 * test.Height * test.Width), test.Width, test.Height);
            }
            var scored = loaded.Transform(ml.Data.LoadFromEnumerable(rows));
            var predicted = scored.GetColumn<uint>("PredictedLabel").ToArray();
            var index = test.ClassNames.Select((n, i) => (n, i)).ToDictionary(t => t.n, t => t.i);
            for (int i = 0; i < test.Count; i++)
                cm.Add(test.Labels[i], index[labelNames[(int)predicted[i] - 1]]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
        return cm;
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }
}
