using Microsoft.ML.Beit.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace Beit.Tests;

public class OptimizationTests
{
    [Theory]
    [InlineData("beit.embeddings.cls_token", 0)]
    [InlineData("beit.embeddings.patch_embeddings.projection.weight", 0)]
    [InlineData("beit.encoder.layer.0.attention.attention.query.weight", 1)]
    [InlineData("beit.encoder.layer.11.output.dense.bias", 12)]
    [InlineData("beit.encoder.relative_position_bias.relative_position_bias_table", 13)]
    [InlineData("beit.pooler.layernorm.weight", 13)]
    [InlineData("classifier.weight", 13)]
    [InlineData("decode_head.classifier.weight", 13)]
    public void LayerIdsFollowTheOriginalRecipe(string name, int expected) =>
        Assert.Equal(expected, LayerwiseParameterGroups.LayerId(name, 12));

    [Fact]
    public void ScalesAndNoDecayListFollowTheRecipe()
    {
        using var scope = NewDisposeScope();
        var ps = new (string, TorchSharp.Modules.Parameter)[]
        {
            ("beit.embeddings.cls_token", new TorchSharp.Modules.Parameter(zeros(1, 1, 4))),
            ("beit.encoder.layer.1.attention.attention.query.weight", new TorchSharp.Modules.Parameter(zeros(4, 4))),
            ("beit.encoder.layer.1.attention.attention.query.bias", new TorchSharp.Modules.Parameter(zeros(4))),
            ("beit.encoder.layer.1.attention.attention.relative_position_bias.relative_position_bias_table", new TorchSharp.Modules.Parameter(zeros(12, 2))),
            ("beit.encoder.layer.1.lambda_1", new TorchSharp.Modules.Parameter(zeros(4))),
            ("classifier.weight", new TorchSharp.Modules.Parameter(zeros(3, 4))),
        };
        var s = LayerwiseParameterGroups.Build(ps, numLayers: 2, layerDecay: 0.5, weightDecay: 0.05).ToDictionary(x => x.Name);
        Assert.Equal(0.125, s["beit.embeddings.cls_token"].LrScale, 12);   // 0.5^(3-0)
        Assert.Equal(0.5, s["beit.encoder.layer.1.attention.attention.query.weight"].LrScale, 12); // 0.5^(3-2)
        Assert.Equal(1.0, s["classifier.weight"].LrScale, 12);
        Assert.Equal(0.05, s["beit.encoder.layer.1.attention.attention.query.weight"].WeightDecay);
        Assert.Equal(0.05, s["classifier.weight"].WeightDecay);
        Assert.Equal(0, s["beit.embeddings.cls_token"].WeightDecay);
        Assert.Equal(0, s["beit.encoder.layer.1.attention.attention.query.bias"].WeightDecay);
        Assert.Equal(0, s["beit.encoder.layer.1.attention.attention.relative_position_bias.relative_position_bias_table"].WeightDecay);
        Assert.Equal(0, s["beit.encoder.layer.1.lambda_1"].WeightDecay);
    }

    [Fact]
    public void StepsExactlyLikeTorchAdamW()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(0);
        var a = nn.Linear(6, 3);
        var b = nn.Linear(6, 3);
        b.load_state_dict(a.state_dict());
        var x = randn(8, 6);
        var y = randint(3, [8]);
        var reference = optim.AdamW(a.parameters(), lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05);
        var ours = new BeitAdamW(LayerwiseParameterGroups.Build(b.named_parameters().Select(p => (p.name, p.parameter)), 0, 1.0, 0.05)
            .Select(s => s with { WeightDecay = 0.05 }).ToList());
        for (int step = 0; step < 5; step++)
        {
            reference.zero_grad();
            nn.functional.cross_entropy(a.forward(x), y).backward();
            reference.step();
            ours.ZeroGrad();
            nn.functional.cross_entropy(b.forward(x), y).backward();
            ours.Step(1e-2);
        }
        foreach (var ((n1, p1), (_, p2)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True((p1 - p2).abs().max().item<float>() <= 1e-7f, n1);
        ours.Dispose();
    }

    [Fact]
    public void LayerwiseGroupsStepEachTensorAtItsOwnRateAndDecay()
    {
        // Each tensor of a layer-wise, no-decay-aware optimizer moves exactly as a plain AdamW over that tensor alone with
        // lr · decay^(L+1−layer) and its own weight decay (β2 0.999, not TorchSharp's factory default 0.99).
        using var scope = NewDisposeScope();
        random.manual_seed(2);
        var init = new[] { randn(4, 3), randn(3), randn(2, 4) };
        string[] names = ["beit.embeddings.patch_embeddings.projection.weight", "beit.encoder.layer.0.output.dense.bias", "classifier.weight"];
        var ours = init.Select(t => new TorchSharp.Modules.Parameter(t.clone())).ToArray();
        var plain = init.Select(t => new TorchSharp.Modules.Parameter(t.clone())).ToArray();
        var settings = LayerwiseParameterGroups.Build(names.Zip(ours), numLayers: 1, layerDecay: 0.5, weightDecay: 0.05);
        Assert.Equal([0.25, 0.5, 1.0], settings.Select(x => x.LrScale));
        Assert.Equal([0.05, 0.0, 0.05], settings.Select(x => x.WeightDecay));
        using var optimizer = new BeitAdamW(settings);
        var references = settings.Select((x, i) => optim.AdamW([plain[i]], lr: 1e-2 * x.LrScale, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: x.WeightDecay)).ToArray();
        var target = randn(8);
        Tensor Loss(TorchSharp.Modules.Parameter[] p) => (p[0].sum() * p[1].pow(2).sum() + p[2].pow(3).sum() - target.sum()).pow(2);
        for (int step = 0; step < 4; step++)
        {
            optimizer.ZeroGrad();
            Loss(ours).backward();
            optimizer.Step(1e-2);
            foreach (var r in references) r.zero_grad();
            Loss(plain).backward();
            foreach (var r in references) r.step();
        }
        for (int i = 0; i < names.Length; i++)
            Assert.True((ours[i] - plain[i]).abs().max().item<float>() <= 1e-7f, names[i]);
        Assert.True((ours[0] - init[0]).abs().max().item<float>() > 1e-4f, "the embedding moved");
    }

    [Fact]
    public void StateRoundTripResumesIdentically()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(1);
        var m = nn.Linear(4, 2);
        var snapshot = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var x = randn(5, 4);
        Func<Tensor> loss = () => m.forward(x).pow(2).mean();
        var settings = LayerwiseParameterGroups.Build(m.named_parameters().Select(p => (p.name, p.parameter)), 0, 1, 0.1);
        using var opt = new BeitAdamW(settings);
        for (int i = 0; i < 3; i++) { opt.ZeroGrad(); loss().backward(); opt.Step(1e-2); }
        var state = opt.StateDict();
        var weights = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        for (int i = 0; i < 2; i++) { opt.ZeroGrad(); loss().backward(); opt.Step(1e-2); }
        var straight = m.weight.clone();

        using (no_grad()) foreach (var (k, v) in weights) m.state_dict()[k].copy_(v);
        using var resumed = new BeitAdamW(settings);
        resumed.LoadStateDict(state);
        Assert.Equal(3, resumed.StepCount);
        for (int i = 0; i < 2; i++) { resumed.ZeroGrad(); loss().backward(); resumed.Step(1e-2); }
        Assert.Equal(straight.data<float>().ToArray(), m.weight.data<float>().ToArray());
    }

    [Fact]
    public void ScheduleWarmsUpThenFollowsHalfCosine()
    {
        var s = new LearningRateSchedule(BaseLr: 1e-3, MinLr: 1e-5, TotalSteps: 110, WarmupSteps: 10);
        Assert.Equal(0, s.At(0));
        Assert.Equal(5e-4, s.At(5), 12);
        Assert.Equal(1e-3, s.At(10), 12);
        Assert.Equal(1e-5 + 0.5 * (1e-3 - 1e-5), s.At(60), 12);
        Assert.True(s.At(109) > 1e-5 && s.At(109) < 1.1e-5);
        Assert.True(Enumerable.Range(10, 99).All(i => s.At(i + 1) <= s.At(i)));
    }
}
