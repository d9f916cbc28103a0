using Microsoft.ML.Beit.Training.Data;
using static TorchSharp.torch;

namespace Beit.Tests;

public class BatchAugmentationTests
{
    [Fact]
    public void CropBoxesStayInsideTheImageWithinScaleAndRatio()
    {
        var rng = new Random(0);
        var s = new BatchAugmentation.CropSettings();
        for (int i = 0; i < 2000; i++)
        {
            var (top, left, h, w) = BatchAugmentation.SampleCrop(28, 40, s, rng);
            Assert.InRange(top, 0, 28 - h);
            Assert.InRange(left, 0, 40 - w);
            Assert.InRange(h, 1, 28);
            Assert.InRange(w, 1, 40);
        }
    }

    [Fact]
    public void LabelMapsFollowTheImageGeometry()
    {
        using var scope = NewDisposeScope();
        // Image channel 0 encodes the label, so after crop+flip the two must still agree pixel for pixel.
        var labels = randint(5, [3, 32, 32], generator: new Generator(1));
        var images = labels.unsqueeze(1).to(float32).repeat(1, 3, 1, 1);
        var (augImages, augLabels) = BatchAugmentation.RandomResizedCropAndFlip(images, labels, 32, 32,
            new BatchAugmentation.CropSettings(MinScale: 0.5), 0.5, new Random(2));
        Assert.Equal(new long[] { 3, 3, 32, 32 }, augImages.shape);
        Assert.Equal(new long[] { 3, 32, 32 }, augLabels!.shape);
        // Bicubic blurs edges; where the image is locally constant it must equal the label carried along.
        var (nearestImages, _) = BatchAugmentation.RandomResizedCropAndFlip(images, labels, 32, 32,
            new BatchAugmentation.CropSettings(MinScale: 1, MaxScale: 1, MinRatio: 1, MaxRatio: 1), 1.0, new Random(3));
        Assert.Equal(images.flip(3).data<float>().ToArray(), nearestImages.data<float>().ToArray());
        Assert.True(augImages.min().item<float>() >= 0 && augImages.max().item<float>() <= 4);
    }

    [Fact]
    public void SameSeedSameAugmentation()
    {
        using var scope = NewDisposeScope();
        var images = rand(4, 3, 16, 16, generator: new Generator(5));
        var a = BatchAugmentation.RandomResizedCropAndFlip(images, null, 12, 12, new(), 0.5, new Random(9)).Images;
        var b = BatchAugmentation.RandomResizedCropAndFlip(images, null, 12, 12, new(), 0.5, new Random(9)).Images;
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
    }

    [Fact]
    public void MixedTargetsStayDistributionsAndSmoothingSpreadsMass()
    {
        using var scope = NewDisposeScope();
        var t = BatchAugmentation.SoftTargets(tensor(new long[] { 0, 2 }), 4, 0.1);
        var row = t[0].data<float>().ToArray();
        float[] expected = [0.925f, 0.025f, 0.025f, 0.025f];
        for (int k = 0; k < 4; k++) Assert.Equal(expected[k], row[k], 1e-6f);
        var images = rand(2, 3, 8, 8, generator: new Generator(1));
        var rng = new Random(4);
        for (int i = 0; i < 20; i++)
        {
            var (mixed, targets) = BatchAugmentation.MixupOrCutmix(images, t, 0.8, 1.0, 0.5, rng);
            Assert.Equal(images.shape, mixed.shape);
            Assert.True((targets.sum(1) - 1).abs().max().item<float>() < 1e-6);
        }
    }
}
