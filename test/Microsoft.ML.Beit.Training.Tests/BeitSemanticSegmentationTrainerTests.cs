using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.SemanticSegmentation;

namespace Beit.Tests;

public class BeitSemanticSegmentationTrainerTests
{
    private static readonly string[] Classes = ["background", "square", "disc"];

    // 32×32 scenes: a noisy grey background, a reddish square and a bluish disc at random places and sizes.
    internal static BeitSegmentationImages Shapes(int count, int seed)
    {
        const int s = 32, plane = s * s;
        var rng = new Random(seed);
        var pixels = new byte[count * 3 * plane];
        var maps = new byte[count * plane];
        for (int i = 0; i < count; i++)
        {
            int sq = rng.Next(8, 15), sy = rng.Next(0, s - sq), sx = rng.Next(0, s - sq);
            int r = rng.Next(4, 8), cy = rng.Next(r, s - r), cx = rng.Next(r, s - r);
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++)
                {
                    int label = 0;
                    if (y >= sy && y < sy + sq && x >= sx && x < sx + sq) label = 1;
                    if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) label = 2;
                    maps[i * plane + y * s + x] = (byte)label;
                    int noise() => rng.Next(-25, 26);
                    (int R, int G, int B) c = label switch { 1 => (190, 80, 70), 2 => (60, 90, 200), _ => (120, 120, 120) };
                    pixels[(i * 3 + 0) * plane + y * s + x] = (byte)Math.Clamp(c.R + noise(), 0, 255);
                    pixels[(i * 3 + 1) * plane + y * s + x] = (byte)Math.Clamp(c.G + noise(), 0, 255);
                    pixels[(i * 3 + 2) * plane + y * s + x] = (byte)Math.Clamp(c.B + noise(), 0, 255);
                }
            // Mark a border strip as ignored, as real datasets do for unlabelled pixels.
            for (int x = 0; x < s; x++) maps[i * plane + x] = 255;
        }
        return new BeitSegmentationImages(pixels, maps, count, s, s, Classes);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void LearnsSyntheticShapesToHighMeanIoU()
    {
        var config = new BeitConfig
        {
            ImageSize = 32, PatchSize = 4, HiddenSize = 32, NumHiddenLayers = 4, NumAttentionHeads = 2, IntermediateSize = 64,
            UseRelativePositionBias = true, OutIndices = [1, 2, 3, 4], AuxiliaryChannels = 16,
        };
        var history = new List<BeitEpochMetrics>();
        var result = new BeitSemanticSegmentationTrainer(new()
        {
            Config = config, Epochs = 8, BatchSize = 16, LearningRate = 2e-3, LayerDecay = 1, WarmupEpochs = 1, Augment = true,
            RandomCropMinScale = 0.6, ValidationFraction = 0.15, Seed = 3, EpochCallback = history.Add,
        }).Train(Shapes(192, 1));
        var cm = BeitSemanticSegmentationTrainer.Evaluate(result.Model, Shapes(48, 2), 16, null, out _);
        Assert.True(cm.MeanIoU >= 0.8, $"test mIoU {cm.MeanIoU:F3} (pixel accuracy {cm.Accuracy:F3})");
        Assert.All(history, h => Assert.False(double.IsNaN(h.ValidationMeanIoU)));
        Assert.True(history[^1].TrainLoss < history[0].TrainLoss);

        // The trained model round-trips through model.zip: label maps from the reloaded ML.NET pipeline (ONNX Runtime)
        // match the TorchSharp model's predictions.
        using var dir = new TempDir();
        var scenes = Shapes(4, 5);
        var paths = new List<PathRow>();
        for (int i = 0; i < scenes.Count; i++)
        {
            var file = Path.Combine(dir, $"scene{i}.png");
            Microsoft.ML.Beit.Training.Data.PngWriter.WriteRgb(file, scenes.Pixels.AsSpan(i * 3 * 1024, 3 * 1024), 32, 32);
            paths.Add(new PathRow { ImagePath = file });
        }
        string zip = Path.Combine(dir, "seg.zip");
        BeitSemanticSegmentationTrainer.Save(new MLContext(), result.Model, zip);
        var ml = new Microsoft.ML.MLContext();
        var loaded = ml.Model.Load(zip, out _);
        var maps = loaded.Transform(ml.Data.LoadFromEnumerable(paths)).GetColumn<int[]>("PredictedLabel").ToArray();

        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        var (x, _) = scenes.Batch(Enumerable.Range(0, scenes.Count).ToArray());
        var logits = TorchSharp.torch.nn.functional.interpolate(result.Model.forward(x).Logits, [32, 32],
            mode: TorchSharp.torch.InterpolationMode.Bilinear, align_corners: false);
        var torchMaps = logits.argmax(1).to(TorchSharp.torch.int32).data<int>().ToArray();
        int same = 0;
        for (int i = 0; i < scenes.Count; i++)
        {
            Assert.Equal(1024, maps[i].Length);
            for (int p = 0; p < 1024; p++) if (maps[i][p] == torchMaps[i * 1024 + p]) same++;
        }
        // Near-ties can flip between two float implementations; anything beyond that is a bug.
        Assert.True(same >= 4 * 1024 - 4, $"{4 * 1024 - same} of {4 * 1024} pixels differ between ONNX (zip) and TorchSharp");
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    [Fact]
    public void DefaultOutIndicesSpreadOverTheLayers()
    {
        Assert.Equal(new[] { 3, 6, 9, 12 }, BeitSemanticSegmentationTrainer.DefaultOutIndices(12));
        Assert.Equal(new[] { 1, 2, 3, 4 }, BeitSemanticSegmentationTrainer.DefaultOutIndices(4));
    }

    [Fact]
    public void RejectsLabelsOutsideTheClasses()
    {
        Assert.Throws<ArgumentException>(() => new BeitSegmentationImages(new byte[3 * 4], [0, 1, 7, 255], 1, 2, 2, Classes));
    }
}
