using Microsoft.ML.Beit.Training;
using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Beit.Tests;

public class BeitTrainerEstimatorTests
{
    private sealed class Row
    {
        [VectorType(3 * 16 * 16)] public float[] PixelValues { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private static List<Row> Rows(BeitTrainingImages images)
    {
        var (x, _) = images.Batch(Enumerable.Range(0, images.Count).ToArray());
        using (x)
        {
            var all = x.data<float>().ToArray();
            return Enumerable.Range(0, images.Count).Select(i => new Row
            {
                PixelValues = all.AsSpan(i * 768, 768).ToArray(),
                Label = images.ClassNames[images.Labels[i]],
            }).ToList();
        }
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void FitsInAnMLNetPipelineEvaluatesAndRoundTripsThroughZip()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Rows(BeitImageClassificationTrainerTests.PatternImages(256, 21)));
        var test = ml.Data.LoadFromEnumerable(Rows(BeitImageClassificationTrainerTests.PatternImages(64, 22)));
        var trainer = ml.BeitTrainers().ImageClassification(new BeitImageClassificationTrainer.Options
        {
            Config = BeitImageClassificationTrainerTests.TinyConfig(), Epochs = 6, BatchSize = 16, LearningRate = 2e-3,
            LayerDecay = 1, Augment = false, ValidationFraction = 0, Seed = 3,
        });
        var log = new List<LoggingEventArgs>();
        ml.Log += (_, e) => { lock (log) log.Add(e); };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(trainer);
        var model = pipeline.Fit(train);
        Assert.NotNull(trainer.LastResult);
        // Progress reaches ML.NET's log like a built-in trainer's: the plan, progress within epochs, every epoch.
        var ours = log.Where(e => e.Source.Contains("BeitImageClassificationTrainer", StringComparison.Ordinal)).ToList();
        Assert.Contains(ours, e => e.Kind == ChannelMessageKind.Info && e.Message.Contains("256 training images, 16 batches of 16 per epoch, 6 epochs"));
        for (int epoch = 1; epoch <= 6; epoch++)
            Assert.Contains(ours, e => e.Kind == ChannelMessageKind.Info && e.Message.Contains($"epoch {epoch}: train loss"));
        Assert.Contains(ours, e => e.Kind == ChannelMessageKind.Trace && e.Message.Contains("epoch 6/6, batch 15/16: loss"));
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.True(metrics.MacroAccuracy > 0.5, $"macro accuracy {metrics.MacroAccuracy:P1}");

        using var dir = new TempDir();
        string zip = Path.Combine(dir, "model.zip");
        ml.Model.Save(model, train.Schema, zip);
        var loaded = new MLContext().Model.Load(zip, out _);
        var before = scored.GetColumn<float[]>("Score").ToArray();
        var after = loaded.Transform(test).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], after[i]);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ExportedOnnxOfATrainedModelMatchesTorchSharpLogits()
    {
        var images = BeitImageClassificationTrainerTests.PatternImages(64, 31);
        var result = new BeitImageClassificationTrainer(new()
        {
            Config = BeitImageClassificationTrainerTests.TinyConfig(), Epochs = 1, BatchSize = 16, ValidationFraction = 0, Augment = false, Seed = 4,
        }).Train(images);
        var ml = new MLContext();
        using var transformer = BeitImageClassificationTrainer.ToTransformer(ml, result.Model, logitsColumnName: "Logits");
        var data = ml.Data.LoadFromEnumerable(Rows(images));
        var onnx = transformer.Transform(data).GetColumn<float[]>("Logits").ToArray();

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, _) = images.Batch(Enumerable.Range(0, images.Count).ToArray());
        var torchLogits = result.Model.forward(x).Logits.data<float>().ToArray();
        float max = TestMath.MaxAbsDiff(onnx.SelectMany(row => row).ToArray(), torchLogits);
        Assert.True(max <= 1e-5f, $"ONNX vs TorchSharp logits differ by {max:E2}");
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void Int8ExportOfATrainedModelIsWithinTheQuantizationBoundOfTorchSharp()
    {
        var images = BeitImageClassificationTrainerTests.PatternImages(32, 33);
        var options = new BeitImageClassificationTrainer.Options
        {
            Config = BeitImageClassificationTrainerTests.TinyConfig(), Epochs = 1, BatchSize = 16, ValidationFraction = 0, Augment = false, Seed = 5,
            ExportPrecision = Microsoft.ML.Beit.Onnx.BeitOnnxPrecision.Int8,
        };
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows(images));
        // The trainer's option reaches Fit's transformer.
        var trainer = ml.BeitTrainers().ImageClassification(options);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        using var fitted = trainer.Fit(keyed);
        var result = trainer.LastResult!;
        using var transformer = BeitImageClassificationTrainer.ToTransformer(ml, result.Model, logitsColumnName: "Logits",
            precision: Microsoft.ML.Beit.Onnx.BeitOnnxPrecision.Int8);
        var int8 = transformer.Transform(data).GetColumn<float[]>("Logits").SelectMany(v => v).ToArray();

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, _) = images.Batch(Enumerable.Range(0, images.Count).ToArray());
        var torchLogits = result.Model.forward(x).Logits.data<float>().ToArray();
        // The bound per image (ML.NET scores one image per run, so each image's activations are quantized on their own).
        int k = result.Model.Config.NumLabels;
        var tensors = result.Model.ToTensorData();
        double worst = 0;
        for (int i = 0; i < images.Count; i++)
        {
            var expected = torchLogits.AsSpan(i * k, k).ToArray();
            double bound = QuantizationBounds.Int8LogitBound(result.Model.Config, tensors, expected,
                reduceRange: !Microsoft.ML.Beit.CpuFeatures.Current.HasInt8DotProduct);
            for (int c = 0; c < k; c++)
            {
                double d = Math.Abs(int8[i * k + c] - expected[c]);
                worst = Math.Max(worst, d / bound);
                Assert.True(d <= bound, $"image {i} class {c}: int8 {int8[i * k + c]}, TorchSharp {expected[c]}, bound {bound}");
            }
        }
        Assert.True(worst > 0, "int8 logits equal float32 exactly: nothing was quantized");
        // Fit's transformer is the same int8 graph: identical scores.
        var fromFit = fitted.Transform(keyed).GetColumn<float[]>("Score").ToArray();
        var fromToTransformer = transformer.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < fromFit.Length; i++) Assert.Equal(fromToTransformer[i], fromFit[i]);
    }

    [Fact]
    public void CancelledModelBuilderRunWritesNoZipAndNoTempFiles()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource();
        var options = new BeitImageClassificationTrainer.Options
        {
            Config = BeitImageClassificationTrainerTests.TinyConfig(), Epochs = 3, BatchSize = 8, ValidationFraction = 0,
            Progress = new CancelAfter(cts, batches: 3),
        };
        var images = BeitImageClassificationTrainerTests.PatternImages(64, 41);
        Assert.ThrowsAny<OperationCanceledException>(() =>
            BeitModelBuilder.Train(new MLContext(), images, images, Path.Combine(dir, "model.zip"), options, cts.Token));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
    }

    private sealed class CancelAfter(CancellationTokenSource cts, int batches) : IProgress<Microsoft.ML.Beit.Training.BeitTrainingProgress>
    {
        private int _seen;
        public void Report(Microsoft.ML.Beit.Training.BeitTrainingProgress value)
        {
            if (++_seen == batches) cts.Cancel();
        }
    }

    [Fact]
    public void NonKeyLabelsAreRejectedWithAClearMessage()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows(BeitImageClassificationTrainerTests.PatternImages(8, 1)));
        var e = Assert.Throws<ArgumentException>(() => ml.BeitTrainers().ImageClassification().Fit(data));
        Assert.Contains("MapValueToKey", e.Message);
    }

    [Fact]
    public void FitNeedsTheUsersMLContext()
    {
        var ml = new MLContext();
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Rows(BeitImageClassificationTrainerTests.PatternImages(8, 1))))
            .Transform(ml.Data.LoadFromEnumerable(Rows(BeitImageClassificationTrainerTests.PatternImages(8, 1))));
        // Without a context the trainer would have to invent one, and the user's log, seed and GPU would be lost.
        var e = Assert.Throws<InvalidOperationException>(() => new BeitImageClassificationTrainer(new BeitImageClassificationTrainer.Options { Epochs = 1 }).Fit(data));
        Assert.Contains("mlContext.BeitTrainers()", e.Message);
    }
}
