using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Onnx;

/// <summary>
/// <c>seg_uper</c> (UperNet with overlapping adaptive pooling bins, FPN, BatchNorm with running statistics) vs Hugging Face.
/// PyTorch's own ONNX exporter fails on this model.
/// </summary>
public sealed class SemanticSegmentationParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void LogitsMatch(BeitOnnxOperatorSet set)
    {
        var io = Io("seg_uper");
        using var session = Session("seg_uper", BeitOnnxTask.SemanticSegmentation, set);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        Assert.Equal(["logits"], session.OutputNames);
        AssertClose(output, $"seg_uper logits ({set})", r["logits"], io["logits"]);
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void FullResolutionLabelsMatchPostProcessing(BeitOnnxOperatorSet set)
    {
        // post.1 is post_process_semantic_segmentation of image 1 with target size (64, 64), the input size.
        var io = Io("seg_uper");
        using var session = Session("seg_uper", BeitOnnxTask.SemanticSegmentation, set, new BeitOnnxExportOptions { SegmentationLabels = true });
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        AssertClose(output, $"seg_uper logits with labels ({set})", r["logits"], io["logits"]);
        var labels = r["labels"];
        Assert.Equal([2L, 64, 64], labels.Shape);
        var all = labels.ToInt64Array();
        var expected = io["post.1"].ToInt64Array();
        var image1 = all.AsSpan(64 * 64, 64 * 64).ToArray();
        int mismatches = image1.Zip(expected).Count(p => p.First != p.Second);
        output.WriteLine($"seg_uper labels vs post.1 ({set}): {mismatches} of {expected.Length} pixels differ");
        Assert.Equal(expected, image1);
        Assert.True(all.Distinct().Count() > 1);
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void PostProcessedMapsOfTheOnnxLogitsMatch(BeitOnnxOperatorSet set)
    {
        // post_process_semantic_segmentation(outputs, target_sizes=[(50, 70), (64, 64)]) and without target sizes,
        // applied to the ONNX logits with the C# post-processor.
        var io = Io("seg_uper");
        using var session = Session("seg_uper", BeitOnnxTask.SemanticSegmentation, set);
        var logits = session.Run(io["pixel_values"].ToFloatArray(), 2)["logits"].ToFloatArray();
        var maps = SemanticSegmentationPostProcessor.Process(logits, 2, 6, 32, 32, [(50, 70), (64, 64)]);
        Assert.Equal(io["post.0"].ToInt64Array(), maps[0].Select(v => (long)v));
        Assert.Equal(io["post.1"].ToInt64Array(), maps[1].Select(v => (long)v));
        var native = SemanticSegmentationPostProcessor.Process(logits, 2, 6, 32, 32);
        Assert.Equal(io["post_nosize.0"].ToInt64Array(), native[0].Select(v => (long)v));
        output.WriteLine($"seg_uper post.0, post.1, post_nosize.0 from ONNX logits ({set}): identical");
    }
}
