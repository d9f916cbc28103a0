using Microsoft.ML.Beit.Onnx;
using Xunit.Abstractions;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Onnx;

/// <summary><c>cls_relpos</c> (per-layer relative bias, mean pooling, layer scale) through ONNX Runtime vs Hugging Face.</summary>
public sealed class ImageClassificationParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void LogitsAndProbabilitiesMatch(BeitOnnxOperatorSet set)
    {
        var io = Io("cls_relpos");
        using var session = Session("cls_relpos", BeitOnnxTask.ImageClassification, set);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        AssertClose(output, $"cls_relpos logits ({set})", r["logits"], io["logits"]);
        AssertClose(output, $"cls_relpos probabilities ({set})", r["probabilities"], Softmax(io["logits"]));
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void FeaturesMatch(BeitOnnxOperatorSet set)
    {
        var io = Io("cls_relpos");
        using var session = Session("cls_relpos", BeitOnnxTask.Features, set);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        AssertClose(output, $"cls_relpos last_hidden_state ({set})", r["last_hidden_state"], io["hidden_states.4"]);
        AssertClose(output, $"cls_relpos pooler_output ({set})", r["pooler_output"], io["pooler_output"]);
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void LogitsAt48MatchWithInterpolatedRelativeBias(BeitOnnxOperatorSet set)
    {
        var io = Io("cls_relpos");
        using var session = Session("cls_relpos", BeitOnnxTask.ImageClassification, set, new BeitOnnxExportOptions { ImageHeight = 48, ImageWidth = 48 });
        Assert.Equal(48, session.ImageHeight);
        var r = session.Run(io["pixel_values_48"].ToFloatArray(), 1);
        AssertClose(output, $"cls_relpos logits_48 ({set})", r["logits"], io["logits_48"]);
    }

    [Fact]
    public void FusedGraphWithStandardAttentionMatches()
    {
        // The benchmark's third graph: fused layer norms and GELU around the standard attention subgraph.
        var io = Io("cls_relpos");
        var bytes = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { AttentionOperator = false });
        using var session = new Microsoft.ML.Beit.Scoring.BeitOnnxSession(bytes);
        AssertClose(output, "cls_relpos logits (fused, standard attention)", session.Run(io["pixel_values"].ToFloatArray(), 2)["logits"], io["logits"]);
    }

    [Fact]
    public void ExportFromPyTorchBinMatches()
    {
        // cls_relpos_bin holds the same weights as pytorch_model.bin (PyTorch zip/pickle) with the same config.json.
        var io = Io("cls_relpos");
        using var session = new Microsoft.ML.Beit.Scoring.BeitOnnxSession(
            BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos_bin"), BeitOnnxTask.ImageClassification));
        AssertClose(output, "cls_relpos_bin logits (fused)", session.Run(io["pixel_values"].ToFloatArray(), 2)["logits"], io["logits"]);
    }
}
