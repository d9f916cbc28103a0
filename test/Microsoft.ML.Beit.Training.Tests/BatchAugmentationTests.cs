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

    private static float MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Fact]
    public void TheFullBoxWithoutFlipReproducesTheInputAndAFlipEqualsFlip3()
    {
        using var scope = NewDisposeScope();
        var images = rand(3, 3, 20, 20, generator: new Generator(1));
        var full = new BatchAugmentation.CropSettings(MinScale: 1, MaxScale: 1, MinRatio: 1, MaxRatio: 1);
        var same = BatchAugmentation.RandomResizedCropAndFlip(images, null, 20, 20, full, 0, new Random(2)).Images;
        Assert.True(MaxAbsDiff(same, images) < 1e-5);
        var flipped = BatchAugmentation.RandomResizedCropAndFlip(images, null, 20, 20, full, 1, new Random(2)).Images;
        Assert.True(MaxAbsDiff(flipped, images.flip(3)) < 1e-5);
    }

    [Fact]
    public void AKnownBoxEqualsASliceResizedBilinearly()
    {
        using var scope = NewDisposeScope();
        var images = rand(2, 3, 32, 32, generator: new Generator(3));
        // Shrinking a 16×16 box by 2 samples between pixels of the box only, so the slice+interpolate reference
        // (bilinear, align_corners=False) must agree to float rounding (1e-5).
        var (got, _) = BatchAugmentation.CropResizeFlip(images, null, [(5, 7, 16, 16), (0, 16, 16, 16)], [false, true], 8, 8);
        var first = nn.functional.interpolate(images[0..1, .., 5..21, 7..23], [8, 8], mode: InterpolationMode.Bilinear, align_corners: false);
        var second = nn.functional.interpolate(images[1..2, .., 0..16, 16..32], [8, 8], mode: InterpolationMode.Bilinear, align_corners: false).flip(3);
        Assert.True(MaxAbsDiff(got[0..1], first) < 1e-5);
        Assert.True(MaxAbsDiff(got[1..2], second) < 1e-5);
        // Enlarging the full image: border padding clamps like interpolate does at the edges.
        var (up, _) = BatchAugmentation.CropResizeFlip(images, null, [(0, 0, 32, 32), (0, 0, 32, 32)], [false, false], 45, 40);
        var reference = nn.functional.interpolate(images, [45, 40], mode: InterpolationMode.Bilinear, align_corners: false);
        Assert.True(MaxAbsDiff(up, reference) < 1e-5);
    }

    [Fact]
    public void LabelMapsFollowTheImageGeometry()
    {
        using var scope = NewDisposeScope();
        // Image channel 0 encodes the label. A 1:1 box lands every sample on a pixel centre, where bilinear and
        // nearest agree, so the cropped, flipped image and label map must match exactly.
        var labels = randint(5, [3, 16, 16], generator: new Generator(1));
        var images = labels.unsqueeze(1).to(float32).repeat(1, 3, 1, 1);
        var (augImages, augLabels) = BatchAugmentation.CropResizeFlip(images, labels, [(3, 5, 8, 8), (0, 0, 8, 8), (8, 8, 8, 8)], [true, false, true], 8, 8);
        Assert.Equal(new long[] { 3, 8, 8 }, augLabels!.shape);
        Assert.Equal(augLabels.to(float32).data<float>().ToArray(), augImages[.., 0].data<float>().ToArray());
        Assert.Equal(labels[0..1, 3..11, 5..13].flip(2).data<long>().ToArray(), augLabels[0..1].data<long>().ToArray());
        // Random boxes: labels stay class ids and keep the image's shape.
        var (randomImages, randomLabels) = BatchAugmentation.RandomResizedCropAndFlip(images, labels, 32, 32,
            new BatchAugmentation.CropSettings(MinScale: 0.5), 0.5, new Random(2));
        Assert.Equal(new long[] { 3, 3, 32, 32 }, randomImages.shape);
        Assert.Equal(new long[] { 3, 32, 32 }, randomLabels!.shape);
        Assert.Equal(ScalarType.Int64, randomLabels.dtype);
        Assert.True(randomLabels.min().item<long>() >= 0 && randomLabels.max().item<long>() <= 4);
        Assert.True(randomImages.min().item<float>() >= 0 && randomImages.max().item<float>() <= 4);
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
