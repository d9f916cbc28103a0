using Microsoft.ML.Beit.Onnx;
using Xunit.Abstractions;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Onnx;

/// <summary><c>mim_shared</c> (shared relative bias, mask token, CLS pooling with two final LayerNorms) vs Hugging Face.</summary>
public sealed class MaskedImageModelingParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void LogitsMatchForMaskedPatches(BeitOnnxOperatorSet set)
    {
        var io = Io("mim_shared");
        using var session = Session("mim_shared", BeitOnnxTask.MaskedImageModeling, set);
        Assert.Equal(16, session.NumPatches);
        var mask = io["bool_masked_pos"].ToBoolArray();
        Assert.Contains(true, mask);
        Assert.Contains(false, mask);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2, mask);
        AssertClose(output, $"mim_shared logits ({set})", r["logits"], io["logits"]);
    }

    [Fact]
    public void MaskChangesTheMaskedPatchesOnly()
    {
        // Without masking, the logits differ from the reference: the mask input really is used.
        var io = Io("mim_shared");
        using var session = Session("mim_shared", BeitOnnxTask.MaskedImageModeling, BeitOnnxOperatorSet.OnnxRuntimeFused);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2, new bool[32]);
        Assert.True(TestMath.MaxAbsDiff(r["logits"], io["logits"]) > 1e-2f);
    }
}
