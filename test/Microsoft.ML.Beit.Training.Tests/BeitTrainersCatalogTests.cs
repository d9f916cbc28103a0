using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.Pretraining;
using Microsoft.ML.Beit.Training.SemanticSegmentation;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>The segmentation and pre-training trainers as ML.NET estimators from <c>mlContext.BeitTrainers()</c>.</summary>
public class BeitTrainersCatalogTests
{
    private sealed class SegRow
    {
        [VectorType(3 * 32 * 32)] public float[] PixelValues { get; set; } = [];
        [VectorType(32 * 32)] public byte[] Label { get; set; } = [];
    }

    private sealed class PixelRow
    {
        [VectorType(3 * 16 * 16)] public float[] PixelValues { get; set; } = [];
    }

    private static BeitConfig TinySegConfig() => new()
    {
        ImageSize = 32, PatchSize = 8, HiddenSize = 32, NumHiddenLayers = 4, NumAttentionHeads = 2, IntermediateSize = 64,
        UseRelativePositionBias = true, OutIndices = [1, 2, 3, 4], AuxiliaryChannels = 16,
    };

    [Trait("Category", "Slow")]
    [Fact]
    public void SegmentationEstimatorReturnsASegmenterOfTheTrainedModelAndLogsToTheContext()
    {
        var images = BeitSemanticSegmentationTrainerTests.Shapes(8, 4);
        using var scope = NewDisposeScope();
        var (x, y) = images.Batch(Enumerable.Range(0, images.Count).ToArray());
        var pixels = x.data<float>().ToArray();
        var rows = Enumerable.Range(0, images.Count).Select(i => new SegRow
        {
            PixelValues = pixels.AsSpan(i * 3 * 1024, 3 * 1024).ToArray(),
            Label = images.LabelMaps.AsSpan(i * 1024, 1024).ToArray(),
        }).ToList();
        var ml = new MLContext(seed: 1);
        var log = new List<LoggingEventArgs>();
        ml.Log += (_, e) => { lock (log) log.Add(e); };
        var data = ml.Data.LoadFromEnumerable(rows);
        var progress = new List<BeitTrainingProgress>();
        var trainer = ml.BeitTrainers().SemanticSegmentation(new BeitSemanticSegmentationTrainer.Options
        {
            Config = TinySegConfig(), Epochs = 2, BatchSize = 4, ValidationFraction = 0, Augment = false, Seed = 2,
            ClassNames = ["background", "square", "disc"], Progress = new SyncProgress(progress.Add),
        });
        using var segmenter = trainer.Fit(data);
        var model = trainer.LastResult!.Model;
        Assert.Equal(["background", "square", "disc"], Enumerable.Range(0, 3).Select(model.Config.LabelName));

        // The transformer scores what the TorchSharp model predicts (logits upsampled to the input, arg-max).
        var maps = segmenter.Transform(data).GetColumn<int[]>("PredictedLabel").SelectMany(m => m).ToArray();
        using var noGrad = no_grad();
        var logits = nn.functional.interpolate(model.forward(x).Logits, [32, 32], mode: InterpolationMode.Bilinear, align_corners: false);
        var expected = logits.argmax(1).to(int32).data<int>().ToArray();
        Assert.Equal(expected.Length, maps.Length);
        double agree = expected.Zip(maps).Count(t => t.First == t.Second) / (double)expected.Length;
        Assert.True(agree >= 0.999, $"ONNX and TorchSharp maps agree on {agree:P3} of the pixels");

        // One progress record and the user's log: every step, each epoch's end, and the plan.
        Assert.Equal(4, progress.Count(p => p.Phase == BeitTrainingPhase.Training));
        Assert.Equal([1, 2], progress.Where(p => p.Phase == BeitTrainingPhase.EpochEnd).Select(p => p.Epoch));
        var ours = log.Where(e => e.Source.Contains(nameof(BeitSemanticSegmentationTrainer), StringComparison.Ordinal)).ToList();
        Assert.Contains(ours, e => e.Message.Contains("8 training images, 2 batches of 4 per epoch, 2 epochs"));
        Assert.Contains(ours, e => e.Message.Contains("epoch 2: train loss"));
    }

    [Fact]
    public void SegmentationEstimatorRejectsALabelMapOfAnotherSize()
    {
        var ml = new MLContext();
        var rows = new[] { new SegRow { PixelValues = new float[3 * 32 * 32], Label = new byte[32 * 32] } };
        var schema = SchemaDefinition.Create(typeof(SegRow));
        schema[nameof(SegRow.Label)].ColumnType = new VectorDataViewType(NumberDataViewType.Byte, 16 * 16);
        rows[0].Label = new byte[16 * 16];
        var data = ml.Data.LoadFromEnumerable(rows, schema);
        var e = Assert.Throws<ArgumentException>(() => ml.BeitTrainers().SemanticSegmentation(new() { Config = TinySegConfig(), Epochs = 1 }).Fit(data));
        Assert.Contains("32·32 labels per row", e.Message);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void PretrainingEstimatorReturnsAFeaturizerOfTheBackboneAndReportsTheTokenizer()
    {
        var images = BeitImageClassificationTrainerTests.PatternImages(48, 6);
        using var scope = NewDisposeScope();
        var (x, _) = images.Batch(Enumerable.Range(0, images.Count).ToArray());
        var pixels = x.data<float>().ToArray();
        var ml = new MLContext(seed: 2);
        var log = new List<LoggingEventArgs>();
        ml.Log += (_, e) => { lock (log) log.Add(e); };
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, images.Count).Select(i => new PixelRow { PixelValues = pixels.AsSpan(i * 768, 768).ToArray() }));
        var progress = new List<BeitTrainingProgress>();
        var trainer = ml.BeitTrainers().MaskedImageModeling(new BeitMaskedImageModelingTrainer.Options
        {
            Config = new BeitConfig
            {
                ImageSize = 16, PatchSize = 4, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 64,
                UseSharedRelativePositionBias = true, UseMaskToken = true, LayerScaleInitValue = 0.1,
            },
            Epochs = 1, BatchSize = 16, Augment = false, ValidationFraction = 0, Seed = 1, KMeans = new() { VocabSize = 8, Iterations = 3 },
            Progress = new SyncProgress(progress.Add),
        });
        using var featurizer = trainer.Fit(data);
        Assert.Equal(32, featurizer.FeatureSize);
        var features = featurizer.Transform(data).GetColumn<float[]>("Features").ToArray();
        Assert.Equal(images.Count, features.Length);

        // The featurizer is the pre-trained backbone: its pooled output, as TorchSharp computes it.
        using var dir = new TempDir();
        string folder = Path.Combine(dir, "pretrained");
        BeitMaskedImageModelingTrainer.Save(trainer.LastResult!, folder);
        using var backbone = BeitModel.FromPretrained(folder, strict: false);
        backbone.eval();
        using var noGrad = no_grad();
        var expected = backbone.forward(x).PoolerOutput!.data<float>().ToArray();
        float diff = TestMath.MaxAbsDiff(features.SelectMany(f => f).ToArray(), expected);
        Assert.True(diff <= 1e-5f, $"Features differ from the backbone's pooled output by {diff}");

        // k-means iterations come first through the same record, then the steps; both reach the user's log.
        Assert.Equal(BeitTrainingPhase.Tokenizer, progress[0].Phase);
        Assert.Equal(3, progress.Count(p => p.Phase == BeitTrainingPhase.Training));
        Assert.Contains(log, e => e.Source.Contains(nameof(BeitMaskedImageModelingTrainer), StringComparison.Ordinal) && e.Message.Contains("k-means iteration 1/3", StringComparison.Ordinal));
    }

    private sealed class SyncProgress(Action<BeitTrainingProgress> report) : IProgress<BeitTrainingProgress>
    {
        public void Report(BeitTrainingProgress value) => report(value);
    }
}
