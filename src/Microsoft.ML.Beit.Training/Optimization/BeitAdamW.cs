using Microsoft.ML.Beit.Checkpoints;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Optimization;

/// <summary>
/// TorchSharp's <c>optim.AdamW</c> with one parameter group per (learning-rate scale, weight decay) pair, as timm's
/// <c>param_groups_lrd</c> builds them for layer-wise decay: each step sets every group's rate to
/// <c>scheduled rate · scale</c>. What this adds to the library optimizer is the checkpoint format: moments and step
/// counts saved by parameter name in safetensors, so a resumed run continues exactly.
/// </summary>
internal sealed class BeitAdamW : IDisposable
{
    private readonly AdamW _optimizer;
    private readonly (AdamW.ParamGroup Group, double LrScale)[] _groups;
    // Settings in the order the optimizer's state_dict lists their states (group by group).
    private readonly ParameterSetting[] _stateOrder;

    /// <summary>Creates the optimizer over <paramref name="settings"/>.</summary>
    public BeitAdamW(IReadOnlyList<ParameterSetting> settings, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        Settings = settings;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        var grouped = settings.GroupBy(s => (s.LrScale, s.WeightDecay)).ToList();
        _groups = grouped.Select(g => (new AdamW.ParamGroup(g.Select(s => s.Parameter).ToList(),
            new AdamW.Options { LearningRate = 0, beta1 = beta1, beta2 = beta2, eps = eps, weight_decay = g.Key.WeightDecay, amsgrad = false, maximize = false }), g.Key.LrScale)).ToArray();
        _stateOrder = grouped.SelectMany(g => g).ToArray();
        // beta2 is passed explicitly everywhere: the optim.AdamW factory defaults it to 0.99, PyTorch to 0.999.
        _optimizer = new AdamW(_groups.Select(g => g.Group), lr: 0, beta1: beta1, beta2: beta2, eps: eps);
        // The moments outlive any dispose scope the caller is in.
        foreach (var state in States) { state.exp_avg.DetachFromDisposeScope(); state.exp_avg_sq.DetachFromDisposeScope(); }
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
    public IReadOnlyList<ParameterSetting> Settings { get; }

    private IEnumerable<AdamW.State> States => _optimizer.state_dict().State.Cast<AdamW.State>();

    /// <summary>Clears the gradients of every tensor.</summary>
    public void ZeroGrad() => _optimizer.zero_grad();

    /// <summary>One update with base learning rate <paramref name="lr"/> (each group uses <c>lr · LrScale</c>).</summary>
    public void Step(double lr)
    {
        StepCount++;
        foreach (var (group, scale) in _groups) group.Options.LearningRate = lr * scale;
        _optimizer.step();
    }

    /// <summary>The optimizer state (moments and step counts) as named tensors, for checkpoints.</summary>
    public Dictionary<string, TensorData> StateDict()
    {
        var d = new Dictionary<string, TensorData> { ["step"] = TensorData.FromInt64s([StepCount], 1) };
        foreach (var (s, state) in _stateOrder.Zip(States))
        {
            d["exp_avg." + s.Name] = ToData(state.exp_avg);
            d["exp_avg_sq." + s.Name] = ToData(state.exp_avg_sq);
            // A tensor without gradients on some steps has its own count (its bias correction uses it).
            if (state.step != StepCount) d["step." + s.Name] = TensorData.FromInt64s([state.step], 1);
        }
        return d;
    }

    /// <summary>Restores a state saved by <see cref="StateDict"/>; throws if a tensor is missing or misshapen.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, TensorData> state)
    {
        if (!state.TryGetValue("step", out var step)) throw new InvalidDataException("Optimizer state has no 'step'.");
        long steps = step.ToInt64Array()[0];
        using var noGrad = no_grad();
        foreach (var (s, st) in _stateOrder.Zip(States))
        {
            Load(state, "exp_avg." + s.Name, st.exp_avg);
            Load(state, "exp_avg_sq." + s.Name, st.exp_avg_sq);
            st.step = state.TryGetValue("step." + s.Name, out var own) ? own.ToInt64Array()[0] : steps;
        }
        StepCount = steps;
    }

    private static void Load(IReadOnlyDictionary<string, TensorData> state, string key, Tensor target)
    {
        if (!state.TryGetValue(key, out var t)) throw new InvalidDataException($"Optimizer state has no '{key}'.");
        if (!t.Shape.SequenceEqual(target.shape)) throw new InvalidDataException($"Optimizer state '{key}' has shape [{string.Join(",", t.Shape)}], expected [{string.Join(",", target.shape)}].");
        using var src = tensor(t.ToFloatArray(), t.Shape);
        target.copy_(src);
    }

    private static TensorData ToData(Tensor t)
    {
        using var scope = NewDisposeScope();
        return TensorData.FromFloats(t.detach().cpu().to(float32).contiguous().data<float>().ToArray(), t.shape);
    }

    /// <inheritdoc />
    public void Dispose() => _optimizer.Dispose();
}
