using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;
using Xunit.Abstractions;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Attention;

/// <summary>
/// <see cref="BeitAttentionMaps"/>: ONNX attention outputs against Hugging Face's <c>output_attentions</c> on
/// <c>cls_relpos</c> (<c>io.safetensors</c> keys <c>attentions.0..3</c>, within <see cref="Tolerance"/>), the graph rewrite of a
/// packaged model.zip, and rollout on a case small enough to compute by hand.
/// </summary>
public sealed class BeitAttentionMapsTests(ITestOutputHelper output)
{
    private static readonly PixelSize Grid4 = new(4, 4);

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused, BeitOnnxTask.ImageClassification)]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused, BeitOnnxTask.Features)]
    [InlineData(BeitOnnxOperatorSet.Standard, BeitOnnxTask.ImageClassification)]
    public void OnnxAttentionsMatchHuggingFace(BeitOnnxOperatorSet set, BeitOnnxTask task)
    {
        var io = Io("cls_relpos");
        using var session = Session("cls_relpos", task, set, new BeitOnnxExportOptions { OutputAttentions = true });
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        for (int l = 0; l < 4; l++)
        {
            Assert.Equal([2, 4, 17, 17], r[$"attentions.{l}"].Shape);
            AssertClose(output, $"attentions.{l} ({set}, {task})", r[$"attentions.{l}"], io[$"attentions.{l}"]);
        }
        // The other outputs are unchanged by the rewrite.
        if (task == BeitOnnxTask.ImageClassification) AssertClose(output, $"logits ({set})", r["logits"], io["logits"]);
        var maps = BeitAttentionMaps.FromOutputs(r, Grid4, image: 1);
        Assert.Equal((4, 4, 17), (maps.Layers, maps.Heads, maps.Tokens));
        var expected = io["attentions.2"].ToFloatArray();
        Assert.Equal(expected[((1 * 4 + 3) * 17 + 5) * 17 + 9], maps[2, 3, 5, 9], 1e-5f);
    }

    [Fact]
    public void DefaultExportHasNoAttentionOutputsAndKeepsItsBytes()
    {
        var a = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification);
        var b = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification, new BeitOnnxExportOptions { OutputAttentions = false });
        Assert.Equal(a, b);
        using var session = new BeitOnnxSession(a);
        Assert.DoesNotContain(session.OutputNames, n => n.StartsWith("attentions", StringComparison.Ordinal));
        // Exposing twice is refused, not silently duplicated.
        var once = BeitOnnxAttention.AddOutputs(a);
        Assert.Throws<InvalidDataException>(() => BeitOnnxAttention.AddOutputs(once));
        Assert.Throws<NotSupportedException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { OutputAttentions = true, Precision = BeitOnnxPrecision.Float16 }));
    }

    [Fact]
    public void Int8GraphExposesItsAttentionsCloseToFloat()
    {
        // Int8 rewrites MultiHeadAttention; its probabilities follow the quantized projections, so only a loose sanity bound.
        var io = Io("cls_relpos");
        using var session = Session("cls_relpos", BeitOnnxTask.ImageClassification, BeitOnnxOperatorSet.OnnxRuntimeFused,
            new BeitOnnxExportOptions { OutputAttentions = true, Precision = BeitOnnxPrecision.Int8 });
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        for (int l = 0; l < 4; l++)
        {
            float diff = TestMath.MaxAbsDiff(r[$"attentions.{l}"], io[$"attentions.{l}"]);
            output.WriteLine($"int8 attentions.{l}: max abs diff {diff:E2}");
            Assert.True(diff < 0.05f, $"int8 attentions.{l} differ by {diff}");
        }
    }

    [Fact]
    public void ForeignOnnxIsRefusedWithAClearMessage()
    {
        // torch.onnx.export's graph of the same model: no exporter metadata, no named attention nodes.
        var e = Assert.Throws<InvalidDataException>(() => BeitOnnxAttention.AddOutputs(File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos"), "model.onnx"))));
        Assert.Contains("exported by Microsoft.ML.Beit", e.Message);
        Assert.Throws<InvalidDataException>(() => BeitOnnxAttention.AddOutputs([1, 2, 3]));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void ModelZipAndCheckpointGiveTheSameMaps()
    {
        using var dir = new TempDir();
        string checkpoint = Fixtures.Tiny("cls_relpos"), zip = Path.Combine(dir, "model.zip");
        var ml = new MLContext();
        var input = PipelineData.Paths(ml, []);
        using (var model = ml.Transforms.LoadBeitImages("Image", "ImagePath").Append(ml.Transforms.BeitImageProcessor(checkpoint))
                   .Append(ml.Transforms.BeitClassifier(checkpoint)).Fit(input))
        {
            ml.Model.Save(model, input.Schema, zip);
        }
        var image = ImageDecoder.Decode(Fixtures.Preproc("chelsea.png"));
        using var fromZip = BeitAttentionExplainer.FromModelZip(zip);
        using var fromCheckpoint = BeitAttentionExplainer.FromCheckpoint(checkpoint);
        Assert.Equal(Grid4, fromZip.Grid);
        var a = fromZip.Explain(image);
        var b = fromCheckpoint.Explain(image);
        for (int l = 0; l < 4; l++)
        {
            float diff = TestMath.MaxAbsDiff(a.Layer(l), b.Layer(l));
            output.WriteLine($"zip vs checkpoint, layer {l}: {diff:E2}");
            Assert.True(diff <= Tolerance);
        }
        // Rows of each head are probability distributions.
        for (int h = 0; h < a.Heads; h++)
            for (int q = 0; q < a.Tokens; q++)
                Assert.Equal(1.0, Enumerable.Range(0, a.Tokens).Sum(k => (double)a[3, h, q, k]), 1e-5);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void ZipWithoutABeitGraphSaysToUseTheCheckpoint()
    {
        using var dir = new TempDir();
        string zip = Path.Combine(dir, "foreign.zip");
        var ml = new MLContext();
        var input = PipelineData.Paths(ml, []);
        string checkpoint = Fixtures.Tiny("cls_relpos");
        // A classifier over torch.onnx.export's graph: preprocessing is known, but the graph carries no exporter names.
        using (var model = ml.Transforms.LoadBeitImages("Image", "ImagePath").Append(ml.Transforms.BeitImageProcessor(checkpoint))
                   .Append(ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = BeitModelSource.FromPath(Path.Combine(checkpoint, "model.onnx")) })).Fit(input))
        {
            ml.Model.Save(model, input.Schema, zip);
        }
        var e = Assert.Throws<InvalidDataException>(() => BeitAttentionExplainer.FromModelZip(zip));
        Assert.Contains("checkpoint folder", e.Message);
    }

    /// <summary>
    /// Two layers, two heads, grid 1×2 (tokens CLS, p1, p2). Layer 0: head 0 = I, head 1 sends CLS to p1 and p2 by halves
    /// (other rows = I); mean row 0 = [½, ¼, ¼], Â₀ row 0 = ([½, ¼, ¼] + [1, 0, 0]) / 2 = [¾, ⅛, ⅛], rows 1, 2 = I.
    /// Layer 1: both heads send CLS to p1; Â₁ row 0 = [½, ½, 0], rows 1, 2 = I.
    /// Rollout row 0 = ½·[¾, ⅛, ⅛] + ½·[0, 1, 0] = [⅜, 9/16, 1/16].
    /// </summary>
    [Fact]
    public void RolloutMatchesAHandComputedCase()
    {
        float[] I = [1, 0, 0, 0, 1, 0, 0, 0, 1];
        float[] layer0 = [.. I, .. new float[] { 0, .5f, .5f, 0, 1, 0, 0, 0, 1 }];
        float[] toP1 = [0, 1, 0, 0, 1, 0, 0, 0, 1];
        float[] layer1 = [.. toP1, .. toP1];
        var maps = new BeitAttentionMaps([layer0, layer1], heads: 2, new PixelSize(1, 2));
        var r = maps.Rollout();
        double[] expected = [0.375, 0.5625, 0.0625, 0, 1, 0, 0, 0, 1];
        for (int i = 0; i < 9; i++) Assert.Equal(expected[i], r[i], 12);
        Assert.Equal([0.5625f, 0.0625f], maps.Map(BeitAttentionMethod.Rollout));
        Assert.Equal([0.125f, 0.125f], maps.Map(BeitAttentionMethod.Rollout, layer: 0));
        Assert.Equal([1f, 0f], maps.Map(BeitAttentionMethod.Cls));
        Assert.Equal([0.25f, 0.25f], maps.Map(BeitAttentionMethod.Cls, layer: 0));
        Assert.Equal(0.5f, maps.HeadMean(0)[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => maps.Map(BeitAttentionMethod.Cls, layer: 2));
        Assert.Throws<ArgumentException>(() => new BeitAttentionMaps([layer0], heads: 2, new PixelSize(2, 2)));
    }

    [Fact]
    public void RolloutOfTheFixtureMatchesAPlainMatrixProduct()
    {
        // The vector form used by Map against the full product, on Hugging Face's own probabilities.
        var io = Io("cls_relpos");
        var layers = Enumerable.Range(0, 4).Select(l => io[$"attentions.{l}"].ToFloatArray().AsSpan(0, 4 * 17 * 17).ToArray()).ToList();
        var maps = new BeitAttentionMaps(layers, 4, Grid4);
        var full = maps.Rollout();
        var map = maps.Map(BeitAttentionMethod.Rollout);
        for (int j = 1; j < 17; j++) Assert.Equal(full[j], map[j - 1], 6);
        for (int i = 0; i < 17; i++) Assert.Equal(1.0, Enumerable.Range(0, 17).Sum(j => full[i * 17 + j]), 9);
    }
}
