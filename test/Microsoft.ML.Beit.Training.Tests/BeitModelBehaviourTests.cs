using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Training;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>Behaviour beyond the fixtures, in the style of transformers' test_modeling_beit.py: tiny configs, exact expectations.</summary>
public class BeitModelBehaviourTests
{
    private static BeitConfig TinyConfig(Action<BeitConfig>? change = null)
    {
        var c = new BeitConfig
        {
            HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 32, ImageSize = 16, PatchSize = 4,
            UseRelativePositionBias = true, DropPathRate = 0, LayerScaleInitValue = 0.1,
        };
        change?.Invoke(c);
        return c;
    }

    private static Tensor Pixels(long batch = 2, long size = 16) => randn(batch, 3, size, size, generator: new TorchSharp.torch.Generator(7));

    [Fact]
    public void ProblemTypeIsInferredAndEachLossMatchesItsFormula()
    {
        manual_seed(1);
        // Regression: one label, MSE on squeezed tensors.
        using (var m = new BeitForImageClassification(TinyConfig(c => c.NumLabels = 1)))
        using (NewDisposeScope())
        {
            m.eval();
            var y = tensor(new float[] { 0.5f, -1f });
            var o = m.forward(Pixels(), y);
            Assert.Equal("regression", m.Config.ProblemType);
            var expected = (o.Logits.squeeze() - y).pow(2).mean();
            Assert.Equal(expected.item<float>(), o.Loss!.item<float>(), 6);
        }
        // Multi-label: float targets with several labels, BCE with logits (mean).
        using (var m = new BeitForImageClassification(TinyConfig(c => c.NumLabels = 3)))
        using (NewDisposeScope())
        {
            m.eval();
            var y = tensor(new float[] { 1, 0, 1, 0, 0, 1 }, 2, 3);
            var o = m.forward(Pixels(), y);
            Assert.Equal("multi_label_classification", m.Config.ProblemType);
            var x = o.Logits;
            var expected = (x.clamp_min(0) - x * y + (1 + (-x.abs()).exp()).log()).mean();
            Assert.Equal(expected.item<float>(), o.Loss!.item<float>(), 6);
        }
        // Single-label: integer targets, cross-entropy (mean).
        using (var m = new BeitForImageClassification(TinyConfig(c => c.NumLabels = 3)))
        using (NewDisposeScope())
        {
            m.eval();
            var y = tensor(new long[] { 2, 0 });
            var o = m.forward(Pixels(), y);
            Assert.Equal("single_label_classification", m.Config.ProblemType);
            var logp = o.Logits.log_softmax(1);
            var expected = -(logp[0, 2] + logp[1, 0]) / 2;
            Assert.Equal(expected.item<float>(), o.Loss!.item<float>(), 6);
        }
    }

    [Fact]
    public void DropoutAndDropPathActOnlyInTrainingMode()
    {
        manual_seed(2);
        using var m = new BeitForImageClassification(TinyConfig(c => { c.HiddenDropoutProb = 0.2; c.AttentionProbsDropoutProb = 0.2; c.DropPathRate = 0.5; }));
        using var scope = NewDisposeScope();
        var x = Pixels();
        m.eval();
        Assert.True(m.forward(x).Logits.eq(m.forward(x).Logits).all().item<bool>());
        m.train();
        Assert.False(m.forward(x).Logits.eq(m.forward(x).Logits).all().item<bool>());
    }

    [Fact]
    public void DropPathKeepsOrDropsWholeSamplesAndPreservesTheMean()
    {
        manual_seed(3);
        using var dp = new BeitDropPath(0.5);
        using var scope = NewDisposeScope();
        var x = ones(4000, 3, 2);
        dp.train();
        var y = dp.call(x);
        var perSample = y.amax([1, 2]);
        Assert.True(y.eq(perSample.view(-1, 1, 1)).all().item<bool>(), "a sample was partly dropped");
        Assert.True((perSample.eq(0) | perSample.eq(2)).all().item<bool>(), "kept samples are not scaled by 1/(1-p)");
        Assert.InRange(y.mean().item<float>(), 0.93f, 1.07f);
        dp.eval();
        Assert.True(dp.call(x).eq(x).all().item<bool>());
    }

    [Fact]
    public void FusedAttentionPathEqualsTheEagerPath()
    {
        manual_seed(4);
        using var m = new BeitForImageClassification(TinyConfig(c => c.UseSharedRelativePositionBias = true));
        m.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // Non-zero relative bias tables so the additive mask matters.
        foreach (var (name, p) in m.named_parameters().Where(p => p.name.EndsWith("relative_position_bias_table"))) p.copy_(randn_like(p));
        var x = Pixels();
        var fused = m.forward(x).Logits;
        var eager = m.forward(x, outputAttentions: true).Logits;
        Assert.True((fused - eager).abs().max().item<float>() < 1e-5f);
    }

    [Fact]
    public void HeadMaskZeroesTheMaskedHeadsProbabilities()
    {
        manual_seed(5);
        using var m = new BeitModel(TinyConfig());
        m.eval();
        using var scope = NewDisposeScope();
        var mask = ones(2, 2);
        mask[1, 0] = tensor(0f);
        var o = m.forward(Pixels(), headMask: mask, outputAttentions: true);
        Assert.Equal(0f, o.Attentions![1][.., 0].abs().max().item<float>());
        Assert.True(o.Attentions[1][.., 1].sum().item<float>() > 0);
        Assert.True(o.Attentions[0].sum(-1).sub(1).abs().max().item<float>() < 1e-5f);
    }

    [Fact]
    public void MaskTokenReplacesMaskedPatchesBeforeAbsolutePositionsAreAdded()
    {
        manual_seed(6);
        using var m = new BeitModel(TinyConfig(c => { c.UseMaskToken = true; c.UseAbsolutePositionEmbeddings = true; }));
        m.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parameters = m.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        parameters["embeddings.mask_token"].copy_(randn(1, 1, 16));
        parameters["embeddings.position_embeddings"].copy_(randn(1, 17, 16));
        var masked = ones(2, 16, dtype: ScalarType.Bool);
        var emb = m.forward(Pixels(), masked, outputHiddenStates: true).HiddenStates![0];
        var expected = parameters["embeddings.mask_token"] + parameters["embeddings.position_embeddings"].narrow(1, 1, 16);
        Assert.True((emb.narrow(1, 1, 16) - expected).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void AbsolutePositionEmbeddingsAreResizedToOtherResolutions()
    {
        manual_seed(7);
        using var m = new BeitModel(TinyConfig(c => { c.UseAbsolutePositionEmbeddings = true; c.UseRelativePositionBias = false; }));
        m.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pos = m.named_parameters().Single(p => p.name == "embeddings.position_embeddings").parameter;
        // A table that is constant over patches stays constant under bicubic resizing (the taps sum to 1).
        pos.copy_(full(1, 17, 16, 0.25f));
        var plain = new BeitModel(TinyConfig(c => c.UseRelativePositionBias = false));
        plain.load_state_dict(m.state_dict().Where(kv => kv.Key != "embeddings.position_embeddings").ToDictionary(kv => kv.Key, kv => kv.Value), strict: true);
        var x = Pixels(1, 24); // 6×6 grid against the 4×4 table
        var withPos = m.forward(x, outputHiddenStates: true).HiddenStates![0];
        var without = plain.forward(x, outputHiddenStates: true).HiddenStates![0];
        Assert.Equal(new long[] { 1, 37, 16 }, withPos.shape);
        Assert.True((withPos - without - 0.25f).abs().max().item<float>() < 1e-6f);
        plain.Dispose();
    }

    [Fact]
    public void MaskWithoutMaskTokenIsAClearError()
    {
        using var m = new BeitModel(TinyConfig());
        using var scope = NewDisposeScope();
        var e = Assert.Throws<InvalidOperationException>(() => m.forward(Pixels(), ones(2, 16, dtype: ScalarType.Bool)));
        Assert.Contains("use_mask_token", e.Message);
    }

    [Fact]
    public void ModelRunsOnTheDeviceOfItsParameters()
    {
        // Device-agnostic code: everything created in forward follows the input's device (CPU here; CUDA where available).
        using var m = new BeitForSemanticSegmentation(TinyConfig(c => { c.NumHiddenLayers = 4; c.OutIndices = [1, 2, 3, 4]; c.AuxiliaryChannels = 8; }));
        m.eval();
        using var scope = NewDisposeScope();
        var o = m.forward(Pixels(), randint(0, 2, [2, 16, 16]));
        Assert.Equal(new long[] { 2, 2, 16, 16 }, o.Logits.shape);
        Assert.Equal(TorchSharp.DeviceType.CPU, o.Logits.device_type);
        Assert.True(float.IsFinite(o.Loss!.item<float>()));
        var e = Assert.Throws<ArgumentException>(() => m.forward(Pixels(1, 24)));
        Assert.Contains("16x16", e.Message);
    }
}
