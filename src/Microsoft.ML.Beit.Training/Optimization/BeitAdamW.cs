using Microsoft.ML.Beit.Checkpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Optimization;

/// <summary>
/// AdamW with a learning-rate scale and a weight decay per tensor, stepping exactly as PyTorch's
/// <c>torch.optim.AdamW</c> does (decoupled decay, bias-corrected moments). The trainers use it so layer-wise decay
/// and the no-decay list need no optimizer parameter groups, and so its state saves with a checkpoint.
/// </summary>
public sealed class BeitAdamW : IDisposable
{
    private readonly IReadOnlyList<ParameterSetting> _settings;
    private readonly Tensor[] _expAvg, _expAvgSq;

    /// <summary>Creates the optimizer over <paramref name="settings"/>.</summary>
    public BeitAdamW(IReadOnlyList<ParameterSetting> settings, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        _settings = settings;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        _expAvg = settings.Select(s => zeros_like(s.Parameter).DetachFromDisposeScope()).ToArray();
        _expAvgSq = settings.Select(s => zeros_like(s.Parameter).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>First-moment decay.</summary>
    public double Beta1 { get; }
    /// <summary>Second-moment decay.</summary>
    public double Beta2 { get; }
    /// <summary>Denominator epsilon.</summary>
    public double Eps { get; }
    /// <summary>Steps taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>The tensors being optimised, with their settings.</summary>
    public IReadOnlyList<ParameterSetting> Settings => _settings;

    /// <summary>Clears the gradients of every tensor.</summary>
    public void ZeroGrad()
    {
        foreach (var s in _settings)
        {
            if (s.Parameter.grad is { } g) { g.detach_(); g.zero_(); }
        }
    }

    /// <summary>One update with base learning rate <paramref name="lr"/> (each tensor uses <c>lr · LrScale</c>).</summary>
    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int i = 0; i < _settings.Count; i++)
        {
            var s = _settings[i];
            var g = s.Parameter.grad;
            if (g is null) continue;
            double groupLr = lr * s.LrScale;
            if (s.WeightDecay != 0) s.Parameter.mul_(1 - groupLr * s.WeightDecay);
            _expAvg[i].lerp_(g, 1 - Beta1);
            _expAvgSq[i].mul_(Beta2).addcmul_(g, g, 1 - Beta2);
            var denom = (_expAvgSq[i].sqrt() / bc2Sqrt).add_(Eps);
            s.Parameter.addcdiv_(_expAvg[i], denom, -groupLr / bc1);
        }
    }

    /// <summary>The optimizer state (moments and step count) as named tensors, for checkpoints.</summary>
    public Dictionary<string, TensorData> StateDict()
    {
        var d = new Dictionary<string, TensorData> { ["step"] = TensorData.FromInt64s([StepCount], 1) };
        for (int i = 0; i < _settings.Count; i++)
        {
            d["exp_avg." + _settings[i].Name] = ToData(_expAvg[i]);
            d["exp_avg_sq." + _settings[i].Name] = ToData(_expAvgSq[i]);
        }
        return d;
    }

    /// <summary>Restores a state saved by <see cref="StateDict"/>; throws if a tensor is missing or misshapen.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, TensorData> state)
    {
        if (!state.TryGetValue("step", out var step)) throw new InvalidDataException("Optimizer state has no 'step'.");
        using var noGrad = no_grad();
        for (int i = 0; i < _settings.Count; i++)
        {
            Load(state, "exp_avg." + _settings[i].Name, _expAvg[i]);
            Load(state, "exp_avg_sq." + _settings[i].Name, _expAvgSq[i]);
        }
        StepCount = step.ToInt64Array()[0];
    }

    private static void Load(IReadOnlyDictionary<string, TensorData> state, string key, Tensor target)
    {
        if (!state.TryGetValue(key, out var t)) throw new InvalidDataException($"Optimizer state has no '{key}'.");
        if (!t.Shape.SequenceEqual(target.shape)) throw new InvalidDataException($"Optimizer state '{key}' has shape [{string.Join(",", t.Shape)}], expected [{string.Join(",", target.shape)}].");
        using var src = tensor(t.ToFloatArray(), t.Shape);
        target.copy_(src);
    }

    private static TensorData ToData(Tensor t) => TensorData.FromFloats(t.detach().cpu().to(float32).contiguous().data<float>().ToArray(), t.shape);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
    }
}
