using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Processing;

namespace Beit.Tests;

/// <summary><c>post_process_semantic_segmentation</c> against Hugging Face's label maps for <c>tiny/seg_uper</c> (exact match).</summary>
public class SemanticSegmentationPostProcessorParityTests
{
    private static readonly Dictionary<string, TensorData> s_io = SafeTensors.Read(Path.Combine(Fixtures.Tiny("seg_uper"), "io.safetensors"));

    private static (float[] Logits, int B, int C, int H, int W) Logits()
    {
        var t = s_io["logits"];
        return (t.ToFloatArray(), (int)t.Shape[0], (int)t.Shape[1], (int)t.Shape[2], (int)t.Shape[3]);
    }

    [Fact]
    public void WithTargetSizesMatchesHuggingFaceExactly()
    {
        var (logits, b, c, h, w) = Logits();
        var maps = SemanticSegmentationPostProcessor.Process(logits, b, c, h, w, [(50, 70), (64, 64)]);
        Assert.Equal(s_io["post.0"].ToInt64Array().Select(v => (int)v), maps[0]);
        Assert.Equal(s_io["post.1"].ToInt64Array().Select(v => (int)v), maps[1]);
    }

    [Fact]
    public void WithoutTargetSizesIsArgMaxAtLogitResolution()
    {
        var (logits, b, c, h, w) = Logits();
        var maps = SemanticSegmentationPostProcessor.Process(logits, b, c, h, w);
        Assert.Equal(h * w, maps[0].Length);
        Assert.Equal(s_io["post_nosize.0"].ToInt64Array().Select(v => (int)v), maps[0]);
    }

    [Fact]
    public void ResizeBilinearMatchesPyTorchOnAKnownCase()
    {
        // torch.nn.functional.interpolate(torch.tensor([[[[0.,1.],[2.,3.]]]]), size=(3,4), mode="bilinear", align_corners=False)
        var r = SemanticSegmentationPostProcessor.ResizeBilinear([0f, 1f, 2f, 3f], 1, 2, 2, 3, 4);
        float[] expected =
        [
            0.0000f, 0.2500f, 0.7500f, 1.0000f,
            1.0000f, 1.2500f, 1.7500f, 2.0000f,
            2.0000f, 2.2500f, 2.7500f, 3.0000f,
        ];
        Assert.Equal(expected.Length, r.Length);
        for (int i = 0; i < r.Length; i++) Assert.Equal(expected[i], r[i], 6);
    }

    [Fact]
    public void RejectsWrongTargetCount()
    {
        var (logits, b, c, h, w) = Logits();
        var e = Assert.Throws<ArgumentException>(() => SemanticSegmentationPostProcessor.Process(logits, b, c, h, w, [(10, 10)]));
        Assert.Contains("target sizes", e.Message);
    }
}
