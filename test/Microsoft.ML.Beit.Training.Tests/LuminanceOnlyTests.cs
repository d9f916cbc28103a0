using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using static TorchSharp.torch;

namespace Beit.Tests;

public class LuminanceOnlyTests
{
    [Fact]
    public void LuminanceCopiesSetEveryChannelToPillowsLuma()
    {
        // Two 1×2 images: pure red and white; mid grey and a colour.
        byte[] pixels = [255, 255, 0, 255, 0, 255, /**/ 128, 10, 128, 200, 128, 30];
        var images = new BeitTrainingImages(pixels, [0, 1], 1, 2, ["a", "b"]) { ImageMean = [0.4f, 0.5f, 0.6f] };
        var grey = images.ToLuminance();
        // Pillow: L = (R·19595 + G·38470 + B·7471 + 0x8000) >> 16, so red 76, white 255, grey 128, (10, 200, 30) 124.
        Assert.Equal([76, 255, 76, 255, 76, 255, 128, 124, 128, 124, 128, 124], grey.Pixels);
        Assert.Equal(images.Labels, grey.Labels);
        Assert.Equal(images.ImageMean, grey.ImageMean);
        Assert.Equal(pixels, images.Pixels); // the original is untouched
    }

    [Fact]
    public void FoldingMakesTheModelComputeOnColourWhatItComputedOnLuminance()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var model = new BeitForImageClassification(BeitImageClassificationTrainerTests.TinyConfig());
        model.eval();
        // Per-channel normalisation that differs between channels (ImageNet's), so the fold's bias term matters.
        float[] mean = [0.485f, 0.456f, 0.406f], std = [0.229f, 0.224f, 0.225f];
        var m = tensor(mean, [1, 3, 1, 1]);
        var s = tensor(std, [1, 3, 1, 1]);
        var colour = rand(4, 3, 16, 16, generator: new Generator(5));
        var luma = (colour * tensor(BeitTrainingImages.Luma, [1, 3, 1, 1])).sum(1, keepdim: true).expand(-1, 3, -1, -1);
        Tensor before, after;
        using (no_grad())
            before = model.forward((luma - m) / s).Logits.clone();
        BeitImageClassificationTrainer.FoldLuminance(model, mean, std);
        using (no_grad())
            after = model.forward((colour - m) / s).Logits;
        Assert.True((before - after).abs().max().item<float>() < 1e-5, $"{(before - after).abs().max().item<float>()}");
        // And the colour itself no longer matters: two images with the same luma give the same logits.
        var sameLuma = colour + tensor(new[] { 0.587f * 0.1f, -0.299f * 0.1f, 0 }, [1, 3, 1, 1]); // 0.299·δr + 0.587·δg = 0
        using (no_grad())
            Assert.True((model.forward((sameLuma - m) / s).Logits - after).abs().max().item<float>() < 1e-5);
    }
}
