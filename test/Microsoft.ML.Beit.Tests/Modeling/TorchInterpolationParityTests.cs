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

/// <summary>PyTorch's bicubic <c>align_corners=False</c> resize and transformers' absolute position resize, against torch references.</summary>
public sealed class TorchBicubicParityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    // The C# kernel repeats libtorch's x64 arithmetic, fused multiply-adds included; Debian's 1.13 build has none, a few ulps apart.
    private const float KernelTolerance = 1e-5f;
    // The bound for the absolute position table at a non-square size.
    private const float PositionTolerance = 1e-4f;

    private static readonly Lazy<Dictionary<string, TensorData>> s_reference =
        new(() => SafeTensors.Read(Fixtures.TorchBicubic("bicubic_reference.safetensors")));

    private float MaxDiff(string what, float[] actual, string key)
    {
        var expected = s_reference.Value[key].ToFloatArray();
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"{what}: NaN at {i}");
            max = Math.Max(max, Math.Abs(actual[i] - expected[i]));
        }
        output.WriteLine($"{what}: max abs diff {max:E2}");
        return max;
    }

    [Theory]
    [InlineData(9, 4)]
    [InlineData(2, 13)]
    public void ResizeBicubicMatchesTorch(int height, int width)
    {
        var planes = s_reference.Value["planes"].ToFloatArray(); // [1, 3, 5, 7]
        var resized = TorchInterpolation.ResizeBicubic(planes, 3, 5, 7, height, width);
        Assert.True(MaxDiff($"bicubic 5x7 -> {height}x{width}", resized, $"planes_bicubic_{height}x{width}") <= KernelTolerance);
    }

    [Fact]
    public void PositionEmbeddingsAtANonSquareGridMatchTransformers()
    {
        var table = s_reference.Value["pos_embed"].ToFloatArray(); // [1, 197, 8]: a 14×14 grid
        var resized = BeitGeometry.InterpolatePositionEmbeddings(table, 8, 10, 18);
        Assert.Equal(181 * 8, resized.Length);
        Assert.True(MaxDiff("pos_embed 14x14 -> 10x18", resized, "pos_embed_interpolated") <= PositionTolerance);
        Assert.Equal(table.AsSpan(0, 8).ToArray(), resized.AsSpan(0, 8).ToArray()); // CLS row kept
    }

    [Fact]
    public void PositionEmbeddingsAtTheNativeGridAreUnchanged()
    {
        var table = s_reference.Value["pos_embed"].ToFloatArray();
        Assert.Same(table, BeitGeometry.InterpolatePositionEmbeddings(table, 8, 14, 14));
        // Same size through the kernel is an exact copy too (the cubic weights at t = 0 are 0, 1, 0, 0).
        Assert.Equal(table.AsSpan(8).ToArray(), TransposeBack(TorchInterpolation.ResizeBicubic(Planes(table), 8, 14, 14, 14, 14)));
    }

    [Fact]
    public void NonSquareTableIsAClearError()
    {
        Assert.Throws<InvalidDataException>(() => BeitGeometry.InterpolatePositionEmbeddings(new float[(12 + 1) * 8], 8, 4, 4));
    }

    private static float[] Planes(float[] table)
    {
        var p = new float[196 * 8];
        for (int n = 0; n < 196; n++) for (int c = 0; c < 8; c++) p[c * 196 + n] = table[(1 + n) * 8 + c];
        return p;
    }

    private static float[] TransposeBack(float[] planes)
    {
        var t = new float[196 * 8];
        for (int n = 0; n < 196; n++) for (int c = 0; c < 8; c++) t[n * 8 + c] = planes[c * 196 + n];
        return t;
    }
}
