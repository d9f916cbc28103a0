using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>
/// The TorchSharp models against Hugging Face transformers 5.17 on every tiny fixture (<c>test/fixtures/hf-beit/tiny</c>):
/// every float key of each <c>io.safetensors</c> within 1e-4 (max abs diff), label maps exact.
/// </summary>
public class BeitModelParityTests(ITestOutputHelper output)
{
    [Fact]
    public void ClsRelposMatchesHuggingFace()
    {
        var io = ParityAssert.Io(Fixtures.Tiny("cls_relpos"));
        var check = new ParityAssert(output, "cls_relpos");
        using var model = BeitForImageClassification.FromPretrained(Fixtures.Tiny("cls_relpos"));
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ParityAssert.Input(io["pixel_values"]);
        var outputs = model.forward(pixels, labels: ParityAssert.Input(io["labels"]), outputAttentions: true, outputHiddenStates: true);
        check.Close("logits", outputs.Logits, io["logits"]);
        check.Close("loss", outputs.Loss!, io["loss"]);
        Assert.Equal(5, outputs.HiddenStates!.Count);
        for (int i = 0; i < 5; i++) check.Close($"hidden_states.{i}", outputs.HiddenStates[i], io[$"hidden_states.{i}"]);
        Assert.Equal(4, outputs.Attentions!.Count);
        for (int i = 0; i < 4; i++) check.Close($"attentions.{i}", outputs.Attentions[i], io[$"attentions.{i}"]);
        check.Close("pooler_output", model.Beit.forward(pixels).PoolerOutput!, io["pooler_output"]);
        // 48×48 input: the 4×4-window relative bias tables are resized to the 6×6 grid (transformers ≥ mid-2024 behaviour).
        var logits48 = model.forward(ParityAssert.Input(io["pixel_values_48"]), interpolatePosEncoding: true).Logits;
        check.Close("logits_48", logits48, io["logits_48"]);
    }

    [Fact]
    public void ClsRelposBinGivesTheSafetensorsLogits()
    {
        var io = ParityAssert.Io(Fixtures.Tiny("cls_relpos"));
        var check = new ParityAssert(output, "cls_relpos_bin");
        using var fromBin = BeitForImageClassification.FromPretrained(Fixtures.Tiny("cls_relpos_bin"));
        using var fromSafetensors = BeitForImageClassification.FromPretrained(Fixtures.Tiny("cls_relpos"));
        fromBin.eval();
        fromSafetensors.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ParityAssert.Input(io["pixel_values"]);
        var a = fromBin.forward(pixels).Logits;
        var b = fromSafetensors.forward(pixels).Logits;
        Assert.True(BeitTensors.ToTensorData(a).Data.AsSpan().SequenceEqual(BeitTensors.ToTensorData(b).Data), "pytorch_model.bin and model.safetensors give different logits");
        check.Close("logits", a, io["logits"]);
    }

    [Fact]
    public void MimSharedMatchesHuggingFace()
    {
        var io = ParityAssert.Io(Fixtures.Tiny("mim_shared"));
        var check = new ParityAssert(output, "mim_shared");
        using var model = BeitForMaskedImageModeling.FromPretrained(Fixtures.Tiny("mim_shared"));
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ParityAssert.Input(io["pixel_values"]);
        var mask = ParityAssert.Input(io["bool_masked_pos"]);
        var outputs = model.forward(pixels, mask, ParityAssert.Input(io["labels"]), outputHiddenStates: true);
        check.Close("logits", outputs.Logits, io["logits"]);
        check.Close("loss", outputs.Loss!, io["loss"]);
        for (int i = 0; i < 5; i++) check.Close($"hidden_states.{i}", outputs.HiddenStates![i], io[$"hidden_states.{i}"]);
        check.Close("beit.last_hidden_state", model.Beit.forward(pixels, mask).LastHiddenState, io["beit.last_hidden_state"]);
    }

    [Fact]
    public void SegUperMatchesHuggingFace()
    {
        var io = ParityAssert.Io(Fixtures.Tiny("seg_uper"));
        var check = new ParityAssert(output, "seg_uper");
        using var model = BeitForSemanticSegmentation.FromPretrained(Fixtures.Tiny("seg_uper"));
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var outputs = model.forward(ParityAssert.Input(io["pixel_values"]), ParityAssert.Input(io["labels"]), outputHiddenStates: true);
        check.Close("logits", outputs.Logits, io["logits"]);
        check.Close("loss", outputs.Loss!, io["loss"]);
        for (int i = 0; i < 5; i++) check.Close($"hidden_states.{i}", outputs.HiddenStates![i], io[$"hidden_states.{i}"]);
        for (int i = 0; i < 4; i++) check.Close($"fpn.{i}", outputs.FeatureMaps[i], io[$"fpn.{i}"]);
        check.Close("auxiliary_logits", outputs.AuxiliaryLogits!, io["auxiliary_logits"]);

        // post_process_semantic_segmentation on our logits: label maps identical to Hugging Face's.
        var logits = BeitTensors.ToTensorData(outputs.Logits);
        var shape = logits.Shape.Select(d => (int)d).ToArray();
        var maps = SemanticSegmentationPostProcessor.Process(logits.ToFloatArray(), shape[0], shape[1], shape[2], shape[3], [(50, 70), (64, 64)]);
        check.Exact("post.0", maps[0], io["post.0"]);
        check.Exact("post.1", maps[1], io["post.1"]);
        var noSize = SemanticSegmentationPostProcessor.Process(logits.ToFloatArray(), shape[0], shape[1], shape[2], shape[3]);
        check.Exact("post_nosize.0", noSize[0], io["post_nosize.0"]);
    }
}
