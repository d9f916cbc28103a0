using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Training.ImageClassification;
using Defaults = Microsoft.ML.Beit.Training.ImageClassification.BeitTrainingDefaults;

namespace Beit.Tests;

public class BeitTrainingDefaultsTests
{
    private static readonly CpuFeatures Avx2Only = new(true, false, false, false, false);
    private static readonly CpuFeatures Bf16Native = new(true, true, true, true, false);

    [Fact]
    public void CpuInfoFlagsAreParsedAndBf16IsNativeOnlyWithAvx512Bf16OrAmx()
    {
        var zen3 = CpuFeatures.FromCpuInfo("processor\t: 0\nflags\t\t: fpu sse avx avx2 fma\n");
        Assert.Equal(new CpuFeatures(true, false, false, false, false), zen3);
        Assert.False(zen3.HasNativeBf16);
        Assert.Contains("bf16 emulated", zen3.Describe());
        var sapphire = CpuFeatures.FromCpuInfo("flags\t: avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16\n");
        Assert.True(sapphire.HasNativeBf16 && sapphire.Amx == true && sapphire.Avx512Vnni == true);
        Assert.True(new CpuFeatures(true, true, false, false, true).HasNativeBf16);
        Assert.Equal(CpuFeatures.Unknown, CpuFeatures.FromCpuInfo("model name : something\n"));
        Assert.False(CpuFeatures.Unknown.HasNativeBf16);
        Assert.Contains("unknown", CpuFeatures.Unknown.Describe());
    }

    [Fact]
    public void SmallGreyImagesFromScratchGetTheMeasuredRecipe()
    {
        var c = Defaults.Choose(new Defaults.DataStats(2000, 28, 28, Grey: true, Classes: 10), Avx2Only, new BeitImageClassificationTrainer.Options());
        // The recipe measured at 72 % on the 3,000-image subset (formerly hard-coded in `beit demo`); 15·√(3000/2000) epochs.
        Assert.Equal(18, c.Epochs);
        Assert.Equal((0.0, 0.0), (c.RandAugmentMagnitude, c.RandomErasingProbability)); // grey: crops and flips alone
        Assert.Equal(15, Defaults.Choose(new Defaults.DataStats(3000, 28, 28, true, 10), Avx2Only, new BeitImageClassificationTrainer.Options()).Epochs);
        var full = Defaults.Choose(new Defaults.DataStats(60000, 28, 28, true, 10), Avx2Only, new BeitImageClassificationTrainer.Options());
        Assert.Equal((10, false, 128, 2e-3), (full.Epochs, full.Augment, full.BatchSize, full.LearningRate)); // many tiny images, a few epochs: no crops, larger batches
        Assert.Equal(32, c.BatchSize); // small steps: 73.7 % against batch 128's 70.1 % in the same 3 minutes
        Assert.Equal(1e-3, c.LearningRate, 12);
        Assert.Equal(0.2, c.WarmupEpochs, 12);
        Assert.Equal(1.0, c.LayerDecay);
        Assert.Equal(0.05, c.DropPathRate);
        Assert.Equal(0.05, c.ValidationFraction);
        Assert.True(c.Augment); // mild crops: 73.7 % against 70.8 % without
        Assert.Equal(0.64, c.RandomCropMinScale);
        Assert.False(c.Bf16Autocast); // emulated on AVX2
        Assert.Null(c.Warning);
        Assert.Contains(c.Reasons, r => r.StartsWith("bf16 autocast False", StringComparison.Ordinal));
        var config = Defaults.Config(28, c.DropPathRate);
        Assert.Equal((4, 4, 128), (config.PatchSize, config.NumHiddenLayers, config.HiddenSize));
    }

    [Fact]
    public void LargerColourImagesGetCropsFlipsAndASmallerBatch()
    {
        var c = Defaults.Choose(new Defaults.DataStats(500, 96, 96, Grey: false, Classes: 5), Bf16Native, new BeitImageClassificationTrainer.Options());
        Assert.True(c.Augment);
        Assert.Equal(0.35, c.RandomCropMinScale);
        // 500 colour images train on their luminance, so without RandAugment (grey input); from 1,000 colour images the
        // model sees colour, with the BEiT recipe's rand-m9 and random erasing, as from a checkpoint.
        Assert.Equal((0.0, 0.0), (c.RandAugmentMagnitude, c.RandomErasingProbability));
        var many = Defaults.Choose(new Defaults.DataStats(1000, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options());
        Assert.Equal((9.0, 0.25, false), (many.RandAugmentMagnitude, many.RandomErasingProbability, many.LuminanceOnly));
        var pretrained = Defaults.Choose(new Defaults.DataStats(500, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options { CheckpointFolder = "x" });
        Assert.Equal((9.0, 0.25), (pretrained.RandAugmentMagnitude, pretrained.RandomErasingProbability));
        var mild = Defaults.Choose(new Defaults.DataStats(500, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options { RandAugmentMagnitude = 3, RandomErasingProbability = 0 });
        Assert.Equal((3.0, 0.0), (mild.RandAugmentMagnitude, mild.RandomErasingProbability)); // explicit values win
        // Fewer than 1,000 colour images from scratch: luminance only; not from 1,000, for grey images or a checkpoint.
        Assert.True(c.LuminanceOnly);
        Assert.False(Defaults.Choose(new Defaults.DataStats(1000, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options()).LuminanceOnly);
        Assert.False(Defaults.Choose(new Defaults.DataStats(500, 96, 96, true, 5), Bf16Native, new BeitImageClassificationTrainer.Options()).LuminanceOnly);
        Assert.False(Defaults.Choose(new Defaults.DataStats(500, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options { CheckpointFolder = "x" }).LuminanceOnly);
        Assert.False(Defaults.Choose(new Defaults.DataStats(500, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options { LuminanceOnly = false }).LuminanceOnly);
        Assert.Equal(32, c.BatchSize); // 450 training images: at least 8 steps per epoch at 32
        Assert.Equal(1e-3, c.LearningRate, 12);
        Assert.Equal(30, c.Epochs); // 15·√(3000/500) ≈ 37, at most 30
        Assert.Equal(0.1, c.ValidationFraction);
        Assert.True(c.Bf16Autocast); // native bf16
        var config = Defaults.Config(96, c.DropPathRate);
        Assert.Equal((16, 6), (config.PatchSize, config.NumHiddenLayers));
        // Off the CPU the CPU's flags say nothing: float32 unless asked.
        Assert.False(Defaults.Choose(new Defaults.DataStats(500, 96, 96, false, 5), Bf16Native, new BeitImageClassificationTrainer.Options { Device = "cuda" }).Bf16Autocast);
    }

    [Fact]
    public void ACheckpointGetsTheFineTuningRecipe()
    {
        var o = new BeitImageClassificationTrainer.Options { CheckpointFolder = "some/checkpoint" };
        var c = Defaults.Choose(new Defaults.DataStats(2000, 28, 28, Grey: true, Classes: 10), Avx2Only, o);
        Assert.Equal(0.65, c.LayerDecay);
        Assert.Equal(32, c.BatchSize);
        Assert.Equal(5e-4 * 32 / 256, c.LearningRate, 12);
        Assert.Equal(6, c.Epochs); // a third of 18
        Assert.Equal(1.2, c.WarmupEpochs, 12);
        Assert.Equal(0.1, c.DropPathRate);
        Assert.StartsWith("fine-tuning", c.Reasons[0]);
    }

    [Fact]
    public void ExplicitOptionsWinAndEmulatedBf16OnlyWarns()
    {
        var o = new BeitImageClassificationTrainer.Options
        {
            Epochs = 3, BatchSize = 16, LearningRate = 0.01, WarmupEpochs = 0, LayerDecay = 0.9, DropPathRate = 0,
            Augment = true, RandomCropMinScale = 0.5, ValidationFraction = 0, Bf16Autocast = true,
            RandAugmentMagnitude = 5, RandomErasingProbability = 0.5, LuminanceOnly = true,
        };
        var c = Defaults.Choose(new Defaults.DataStats(2000, 28, 28, Grey: true, Classes: 10), Avx2Only, o);
        Assert.Equal((3, 16, 0.01, 0.0, 0.9, 0.0, true, 0.5, 0.0, true),
            (c.Epochs, c.BatchSize, c.LearningRate, c.WarmupEpochs, c.LayerDecay, c.DropPathRate, c.Augment, c.RandomCropMinScale, c.ValidationFraction, c.Bf16Autocast));
        Assert.Equal((5.0, 0.5, true), (c.RandAugmentMagnitude, c.RandomErasingProbability, c.LuminanceOnly));
        Assert.Single(c.Reasons); // only the data description: nothing was chosen automatically
        Assert.NotNull(c.Warning);
        Assert.Contains("no native bf16", c.Warning);
        Assert.Null(Defaults.Choose(new Defaults.DataStats(2000, 28, 28, true, 10), Bf16Native, o).Warning);

        var resolved = Defaults.Apply(o, c);
        Assert.NotSame(o, resolved);
        Assert.Equal(3, resolved.Epochs);
        var auto = Defaults.Apply(new BeitImageClassificationTrainer.Options(), Defaults.Choose(new Defaults.DataStats(2000, 28, 28, true, 10), Avx2Only, new BeitImageClassificationTrainer.Options()));
        Assert.Equal((18, 32, true), (auto.Epochs, auto.BatchSize, auto.Augment));
        // √ batch scaling of the from-scratch learning rate when only the batch is given.
        Assert.Equal(2e-3, Defaults.Choose(new Defaults.DataStats(2000, 28, 28, true, 10), Avx2Only, new BeitImageClassificationTrainer.Options { BatchSize = 128 }).LearningRate, 12);
    }

    [Fact]
    public void GreyIsDetectedOnlyWhenAllChannelsAreEqual()
    {
        var grey = BeitTrainingImages.FromGrayscale(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [0, 1], 2, 2, ["a", "b"]);
        Assert.True(Defaults.DataStats.Of(grey).Grey);
        var pixels = (byte[])grey.Pixels.Clone();
        pixels[^1] ^= 1; // one blue value of the second image differs
        var colour = new BeitTrainingImages(pixels, [0, 1], 2, 2, ["a", "b"]);
        Assert.Equal(new Defaults.DataStats(2, 2, 2, false, 2), Defaults.DataStats.Of(colour));
    }
}
