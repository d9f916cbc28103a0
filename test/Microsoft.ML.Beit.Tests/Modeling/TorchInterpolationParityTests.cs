using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Modeling;

namespace Beit.Tests.Modeling;

/// <summary>PyTorch's bilinear <c>align_corners=False</c> resize, checked by hand and against Hugging Face's post-processing.</summary>
public sealed class TorchInterpolationParityTests
{
    [Fact]
    public void UpsamplesLikePyTorch()
    {
        // F.interpolate(torch.tensor([[[[1., 2.]]]]), size=(1, 4), mode="bilinear", align_corners=False) = [1, 1.25, 1.75, 2].
        Assert.Equal([1f, 1.25f, 1.75f, 2f], TorchInterpolation.ResizeBilinear([1f, 2f], 1, 1, 2, 1, 4));
        // Downscale 4 → 2 samples the midpoints between pairs.
        Assert.Equal([1.5f, 3.5f], TorchInterpolation.ResizeBilinear([1f, 2f, 3f, 4f], 1, 1, 4, 1, 2));
    }

    [Fact]
    public void SameSizeIsIdentity()
    {
        var x = Enumerable.Range(0, 30).Select(i => i * 0.37f).ToArray();
        Assert.Equal(x, TorchInterpolation.ResizeBilinear(x, 2, 3, 5, 3, 5));
    }

    [Fact]
    public void ReproducesHuggingFacePostProcessingAtNonIntegerScales()
    {
        // post.0 = argmax(interpolate(logits[0], (50, 70), bilinear)) from Hugging Face's post_process_semantic_segmentation.
        var io = SafeTensors.Read(Path.Combine(Fixtures.Tiny("seg_uper"), "io.safetensors"));
        var logits = io["logits"].ToFloatArray(); // [2, 6, 32, 32]
        int c = 6, h = 32, w = 32;
        var image0 = logits.AsSpan(0, c * h * w);
        var up = TorchInterpolation.ResizeBilinear(image0, c, h, w, 50, 70);
        Assert.Equal(io["post.0"].ToInt64Array(), ArgMax(up, c, 50 * 70));
        Assert.Equal(io["post_nosize.0"].ToInt64Array(), ArgMax(image0.ToArray(), c, h * w));
    }

    private static long[] ArgMax(float[] planes, int c, int area)
    {
        var r = new long[area];
        for (int i = 0; i < area; i++)
        {
            int best = 0;
            for (int k = 1; k < c; k++) if (planes[k * area + i] > planes[best * area + i]) best = k;
            r[i] = best;
        }
        return r;
    }
}
