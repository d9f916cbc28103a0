using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Pretraining;
using Microsoft.ML.Beit.Training.SemanticSegmentation;

namespace Beit.Tests;

public class BeitMaskedImageModelingTrainerTests
{
    private static BeitConfig TinyMimConfig() => new()
    {
        ImageSize = 16, PatchSize = 4, HiddenSize = 32, NumHiddenLayers = 4, NumAttentionHeads = 2, IntermediateSize = 64,
        UseSharedRelativePositionBias = true, UseMaskToken = true, LayerScaleInitValue = 0.1,
    };

    [Fact]
    public void PretrainsSavesAndTheCheckpointFineTunes()
    {
        var images = BeitImageClassificationTrainerTests.PatternImages(256, 11);
        var history = new List<BeitEpochMetrics>();
        var result = new BeitMaskedImageModelingTrainer(new()
        {
            Config = TinyMimConfig(), Epochs = 6, BatchSize = 32, LearningRate = 2e-3, WarmupEpochs = 1, Augment = false,
            ValidationFraction = 0.1, Seed = 2, KMeans = new() { VocabSize = 8, Iterations = 10 }, EpochCallback = history.Add,
        }).Train(images);
        Assert.Equal(8, result.Model.Config.VocabSize);
        Assert.True(result.Model.Config.UseSharedRelativePositionBias);
        // Masked tokens are predicted well above the 1/8 of guessing, and better at the end than at the start.
        Assert.True(history[^1].ValidationAccuracy > 0.4, $"masked-token accuracy {history[^1].ValidationAccuracy:P1}");
        Assert.True(history[^1].TrainLoss < history[0].TrainLoss);

        var dir = Fixtures.TempDir();
        try
        {
            string ckpt = Path.Combine(dir, "pretrained");
            BeitMaskedImageModelingTrainer.Save(result, ckpt);
            Assert.True(File.Exists(Path.Combine(ckpt, "config.json")));
            Assert.True(File.Exists(Path.Combine(ckpt, "model.safetensors")));
            Assert.True(File.Exists(Path.Combine(ckpt, KMeansPatchTokenizer.FileName)));
            Assert.Equal(new[] { "pretrained" }, Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));

            // The classification trainer takes it directly (shared bias copied into every layer).
            var fine = new BeitImageClassificationTrainer(new()
            {
                CheckpointFolder = ckpt, Epochs = 1, BatchSize = 32, ValidationFraction = 0, Augment = false,
            }).Train(BeitImageClassificationTrainerTests.PatternImages(64, 12));
            Assert.True(fine.Model.Config.UseRelativePositionBias);
            Assert.False(fine.Model.Config.UseSharedRelativePositionBias);

            // So does the segmentation trainer.
            var seg = new BeitSemanticSegmentationTrainer(new()
            {
                CheckpointFolder = ckpt, Epochs = 1, BatchSize = 8, ValidationFraction = 0, Augment = false,
            }).Train(SegmentationOf(BeitImageClassificationTrainerTests.PatternImages(16, 13)));
            Assert.Equal(4, seg.Model.Config.ResolvedOutIndices().Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    // Pattern images as a two-class segmentation task (left half / right half).
    private static Microsoft.ML.Beit.Training.SemanticSegmentation.BeitSegmentationImages SegmentationOf(BeitTrainingImages images)
    {
        var maps = new byte[images.Count * 16 * 16];
        for (int i = 0; i < images.Count; i++)
            for (int p = 0; p < 256; p++) maps[i * 256 + p] = (byte)(p % 16 < 8 ? 0 : 1);
        return new(images.Pixels, maps, images.Count, 16, 16, ["left", "right"]);
    }

    [Fact]
    public void TokenizerVocabMustMatchTheModel()
    {
        var images = BeitImageClassificationTrainerTests.PatternImages(16, 1);
        using var tokenizer = new OnnxVisualTokenizer(Path.Combine(Fixtures.Root, "..", "tokenizer", "tiny_dvae_encoder.onnx"), new() { VocabSize = 8 });
        var config = TinyMimConfig();
        config.VocabSize = 8;
        Assert.Throws<ArgumentException>(() => new BeitMaskedImageModelingTrainer(new()
        {
            Config = config, Epochs = 1, Tokenizer = tokenizer, ValidationFraction = 0,
        }).Train(images)); // the 14×14 dVAE grid does not fit a 4×4 patch grid
    }
}
