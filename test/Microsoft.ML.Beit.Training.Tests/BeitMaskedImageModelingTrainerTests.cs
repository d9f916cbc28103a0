using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Data;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Pretraining;
using Microsoft.ML.Beit.Training.SemanticSegmentation;
using static TorchSharp.torch;

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

        using var dir = new TempDir();
        string ckpt = Path.Combine(dir, "pretrained");
        BeitMaskedImageModelingTrainer.Save(result, ckpt);
        Assert.True(File.Exists(Path.Combine(ckpt, "config.json")));
        Assert.True(File.Exists(Path.Combine(ckpt, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(ckpt, KMeansPatchTokenizer.FileName)));
        Assert.Equal(new[] { "pretrained" }, Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));

        // The featurizer takes it as it is (shared bias, no pooler, lm_head and tokenizer beside it).
        AssertFeaturizerMatchesBackbone(ckpt);

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

    [Fact]
    public void FeaturizerLoadsAHuggingFaceMaskedImageModelingCheckpoint() =>
        AssertFeaturizerMatchesBackbone(Fixtures.Tiny("mim_shared")); // no mean pooling: the CLS token after the final layernorm

    private sealed class PixelRow
    {
        public float[] PixelValues { get; set; } = [];
    }

    /// <summary>Stated tolerance for ONNX Runtime vs TorchSharp (fp32, tiny models).</summary>
    private const float FeatureTolerance = 1e-5f;

    // BeitFeaturizer on a pre-training checkpoint folder gives the pooled output of the TorchSharp backbone loaded from
    // the same folder (parity-tested against Hugging Face), whose missing pooler starts as Hugging Face initialises it.
    private static void AssertFeaturizerMatchesBackbone(string folder)
    {
        var config = BeitConfig.Load(folder);
        int side = config.ImageSize, n = 3 * side * side;
        var rng = new Random(5);
        var rows = Enumerable.Range(0, 3).Select(_ => new PixelRow
        {
            PixelValues = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(),
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema[nameof(PixelRow.PixelValues)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, n);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows, schema);
        using var featurizer = ml.Transforms.BeitFeaturizer(folder).Fit(data);
        Assert.Equal(config.HiddenSize, featurizer.FeatureSize);
        var features = featurizer.Transform(data).GetColumn<float[]>("Features").ToArray();

        using var backbone = BeitModel.FromPretrained(folder, strict: false);
        backbone.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(rows.SelectMany(r => r.PixelValues).ToArray(), [rows.Count, 3, side, side]);
        var expected = backbone.forward(x).PoolerOutput!.data<float>().ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            float diff = features[i].Zip(expected.AsSpan(i * config.HiddenSize, config.HiddenSize).ToArray()).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(diff <= FeatureTolerance, $"{folder} row {i}: Features differ from the backbone's pooled output by {diff}");
        }
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
