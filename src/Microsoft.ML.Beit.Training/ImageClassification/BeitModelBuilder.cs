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
    /// <summary>A short human-readable report: data, time, throughput, the automatically chosen settings, test accuracy, macro-F1 and the confusion matrix.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        var last = Training.History[^1];
        sb.AppendLine(CultureInfo.InvariantCulture, $"Trained on {TrainCount:N0} images for {Training.History.Count} epochs in {TrainingTime:hh\\:mm\\:ss} ({last.ImagesPerSecond:F0} img/s in the last epoch); kept epoch {Training.BestEpoch}.");
        foreach (var note in Training.Notes) sb.AppendLine("  " + note);
        sb.AppendLine(CultureInfo.InvariantCulture, $"Test ({TestCount:N0} held-out images, scored from {Path.GetFileName(ModelPath)}): accuracy {Test.Accuracy:P2}, macro-F1 {Test.MacroF1:F4}.");
        sb.AppendLine("Per class (precision / recall / F1):");
        for (int c = 0; c < Test.NumClasses; c++)
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {Test.ClassNames[c],-16} {Test.Precision(c):F3} / {Test.Recall(c):F3} / {Test.F1(c):F3}");
        sb.AppendLine("Confusion matrix (rows: truth, columns: prediction):");
        sb.Append(Test.ToText());
        return sb.ToString();
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

    /// <summary>Trains on <paramref name="train"/>, saves <paramref name="modelPath"/>, reloads it and evaluates it on <paramref name="test"/> (ML.NET's multiclass evaluator).</summary>
    public static BeitModelBuilderReport Train(MLContext mlContext, BeitTrainingImages train, BeitTrainingImages test, string modelPath,
        BeitImageClassificationTrainer.Options options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        // Fail before the first epoch, not after the last, when the outputs cannot be written.
        AtomicFile.CheckWritable(modelPath);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = new BeitImageClassificationTrainer(mlContext, options).Train(train, null, cancellationToken);
        var elapsed = clock.Elapsed;
        cancellationToken.ThrowIfCancellationRequested();
        Save(mlContext, result.Model, modelPath, options.ExportPrecision);

        var ml = mlContext;
        var loaded = BeitModelZip.Load(ml, modelPath, out _);
        ConfusionMatrixMetrics cm;
        using (loaded as IDisposable)
            cm = Evaluate(ml, loaded, test, BeitClassifierTransformer.FromLoaded(loaded).LabelNames);
        return new BeitModelBuilderReport(Path.GetFullPath(modelPath), result, cm, train.Count, test.Count, elapsed);
    }

    /// <summary>
    /// Saves a trained model as <c>model.zip</c>: <c>ImagePath</c> → <c>LoadBeitImages</c> → <c>BeitImageProcessor</c>
    /// (resize to the model's size, bicubic, mean/std 0.5, as the trainer saw the images) → <c>BeitClassifier</c>.
    /// </summary>
    /// <param name="mlContext">The context that builds and saves the pipeline.</param>
    /// <param name="model">The trained model.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write (atomically).</param>
    /// <param name="precision">The ONNX graph's precision (<see cref="Onnx.BeitOnnxPrecision.Int8"/>: the fastest on the CPU, about 4× smaller).</param>
    public static void Save(MLContext mlContext, BeitForImageClassification model, string modelPath, Onnx.BeitOnnxPrecision precision = Onnx.BeitOnnxPrecision.Float32) =>
        TrainedModelZip.Save(mlContext, model, Onnx.BeitOnnxTask.ImageClassification, modelPath, precision);

    // Scores the test images through the loaded pipeline from PNG bytes of the in-memory images; ML.NET's multiclass
    // evaluator counts the confusion table.
    private static ConfusionMatrixMetrics Evaluate(MLContext ml, ITransformer loaded, BeitTrainingImages test, IReadOnlyList<string> labelNames)
    {
        var cm = new ConfusionMatrixMetrics(test.ClassNames);
        string dir = BeitTempFiles.NewFolder("eval");
        try
        {
            var rows = new EvalRow[test.Count];
            for (int i = 0; i < test.Count; i++)
            {
                rows[i] = new EvalRow { ImagePath = Path.Combine(dir, i.ToString(CultureInfo.InvariantCulture) + ".png"), Label = test.ClassNames[test.Labels[i]] };
                PngWriter.WriteRgb(rows[i].ImagePath, test.Pixels.AsSpan(i * 3 * test.Height * test.Width, 3 * test.Height * test.Width), test.Height, test.Width);
            }
            var scored = loaded.Transform(ml.Data.LoadFromEnumerable(rows));
            // The truth as a key over the model's label values, so the evaluator lines it up with PredictedLabel.
            var keyData = ml.Data.LoadFromEnumerable(labelNames.Select(n => new LabelRow { Label = n }));
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keyData).Fit(scored).Transform(scored);
            var counts = ml.MulticlassClassification.Evaluate(keyed, "Label", "Score", "PredictedLabel").ConfusionMatrix.Counts;
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

    private sealed class EvalRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }
}
