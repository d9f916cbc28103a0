using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Stochastic depth: in training mode, drops a sample's residual branch with probability p and scales kept ones by 1/(1−p).</summary>
internal sealed class BeitDropPath : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the module with drop probability <paramref name="dropProbability"/>.</summary>
    public BeitDropPath(double dropProbability) : base(nameof(BeitDropPath))
    {
        if (dropProbability is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropProbability));
        DropProbability = dropProbability;
    }

    /// <summary>The probability of dropping a sample's branch.</summary>
    public double DropProbability { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        if (DropProbability == 0 || !training) return input.alias();
        using var scope = NewDisposeScope();
        double keep = 1 - DropProbability;
        var shape = new long[input.dim()];
        Array.Fill(shape, 1L);
        shape[0] = input.shape[0];
        var mask = (rand(shape, dtype: input.dtype, device: input.device) + keep).floor_();
        return (input.div(keep) * mask).MoveToOuterDisposeScope();
    }
}

/// <summary>Hugging Face's <c>BeitIntermediate</c>: the first MLP projection and the activation.</summary>
internal sealed class BeitIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly Func<Tensor, Tensor> _act;

    /// <summary>Builds the projection to <c>intermediate_size</c>.</summary>
    public BeitIntermediate(BeitConfig config) : base(nameof(BeitIntermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize);
        _act = BeitActivation.Get(config.HiddenAct);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        return _act(BeitAutocast.Linear(dense, hiddenStates)).MoveToOuterDisposeScope();
    }
}

/// <summary>Hugging Face's <c>BeitOutput</c>: the second MLP projection and dropout.</summary>
internal sealed class BeitOutput : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly Dropout dropout;

    /// <summary>Builds the projection back to <c>hidden_size</c>.</summary>
    public BeitOutput(BeitConfig config) : base(nameof(BeitOutput))
    {
        dense = nn.Linear(config.IntermediateSize, config.HiddenSize);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        return dropout.call(BeitAutocast.Linear(dense, hiddenStates)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Hugging Face's <c>BeitLayer</c> (pre-LN): <c>x + DropPath(λ₁·Attn(LN(x)))</c>, then <c>+ DropPath(λ₂·MLP(LN(·)))</c>.
/// Layer scale (<c>lambda_1</c>, <c>lambda_2</c>) exists when <c>layer_scale_init_value &gt; 0</c>.
/// </summary>
internal sealed class BeitLayer : nn.Module
{
    private readonly BeitAttention attention;
    private readonly BeitIntermediate intermediate;
    private readonly BeitOutput output;
    private readonly LayerNorm layernorm_before;
    private readonly BeitDropPath drop_path;
    private readonly LayerNorm layernorm_after;
    private readonly Parameter? lambda_1;
    private readonly Parameter? lambda_2;

    /// <summary>Builds one layer.</summary>
    /// <param name="config">The model configuration.</param>
    /// <param name="ownRelativePositionBias">Give this layer its own relative position bias table.</param>
    /// <param name="dropPathRate">This layer's stochastic-depth rate.</param>
    public BeitLayer(BeitConfig config, bool ownRelativePositionBias, double dropPathRate) : base(nameof(BeitLayer))
    {
        attention = new BeitAttention(config, ownRelativePositionBias);
        intermediate = new BeitIntermediate(config);
        output = new BeitOutput(config);
        layernorm_before = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        drop_path = new BeitDropPath(dropPathRate);
        layernorm_after = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        if (config.LayerScaleInitValue > 0)
        {
            lambda_1 = new Parameter(full(config.HiddenSize, config.LayerScaleInitValue));
            lambda_2 = new Parameter(full(config.HiddenSize, config.LayerScaleInitValue));
        }
        RegisterComponents();
    }

    /// <summary>Runs the layer on <c>[B, T, D]</c>; returns the new tokens and, if asked, the attention probabilities.</summary>
    public (Tensor HiddenStates, Tensor? Attentions) forward(Tensor hiddenStates, Tensor? headMask, bool outputAttentions,
        Tensor? sharedRelativePositionBias, bool interpolatePosEncoding, long height, long width)
    {
        using var scope = NewDisposeScope();
        var (attn, probs) = attention.forward(layernorm_before.call(hiddenStates), headMask, outputAttentions,
            sharedRelativePositionBias, interpolatePosEncoding, height, width);
        if (lambda_1 is not null) attn = lambda_1 * attn;
        var h = drop_path.call(attn) + hiddenStates;
        var mlp = output.call(intermediate.call(layernorm_after.call(h)));
        if (lambda_2 is not null) mlp = lambda_2 * mlp;
        var result = (drop_path.call(mlp) + h).MoveToOuterDisposeScope();
        probs?.MoveToOuterDisposeScope();
        return (result, probs);
    }
}

/// <summary>
/// Hugging Face's <c>BeitEncoder</c>: the shared relative position bias (if <c>use_shared_relative_position_bias</c>)
/// and the stack of <see cref="BeitLayer"/> (<c>layer.{i}</c>), with stochastic depth rising linearly to <c>drop_path_rate</c>.
/// </summary>
internal sealed class BeitEncoder : nn.Module
{
    private readonly BeitRelativePositionBias? relative_position_bias;
    private readonly ModuleList<BeitLayer> layer;
    private readonly int _patchSize;

    /// <summary>Builds the encoder.</summary>
    public BeitEncoder(BeitConfig config) : base(nameof(BeitEncoder))
    {
        _patchSize = config.PatchSize;
        if (config.UseSharedRelativePositionBias) relative_position_bias = new BeitRelativePositionBias(config);
        // torch.linspace in float32, as Hugging Face computes the per-layer rates.
        float[] rates;
        using (var r = linspace(0, config.DropPathRate, config.NumHiddenLayers, dtype: ScalarType.Float32)) rates = r.data<float>().ToArray();
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers)
            .Select(i => new BeitLayer(config, config.UseRelativePositionBias, rates[i])).ToArray());
        RegisterComponents();
    }

    /// <summary>The layers, in order.</summary>
    internal IReadOnlyList<BeitLayer> Layers => layer.ToList();

    /// <summary>Runs every layer; <c>hidden_states</c> holds the input and each layer's output (L+1 tensors) when asked.</summary>
    /// <param name="hiddenStates">Embeddings <c>[B, T, D]</c>.</param>
    /// <param name="headMask">Per-layer head masks (or null).</param>
    /// <param name="outputAttentions">Collect each layer's attention probabilities.</param>
    /// <param name="outputHiddenStates">Collect the hidden states.</param>
    /// <param name="interpolatePosEncoding">Hugging Face's flag, passed to the relative biases.</param>
    /// <param name="height">Input pixel height.</param>
    /// <param name="width">Input pixel width.</param>
    public (Tensor LastHiddenState, IReadOnlyList<Tensor>? HiddenStates, IReadOnlyList<Tensor>? Attentions) forward(
        Tensor hiddenStates, IReadOnlyList<Tensor?>? headMask, bool outputAttentions, bool outputHiddenStates,
        bool interpolatePosEncoding, long height, long width)
    {
        using var scope = NewDisposeScope();
        var all = outputHiddenStates ? new List<Tensor>() : null;
        var attentions = outputAttentions ? new List<Tensor>() : null;
        Tensor? shared = relative_position_bias?.forward((int)(height / _patchSize), (int)(width / _patchSize), interpolatePosEncoding, hiddenStates.shape[1]);
        var h = hiddenStates.alias(); // owned by this scope, like every other entry of hidden_states
        for (int i = 0; i < layer.Count; i++)
        {
            all?.Add(h);
            var (next, probs) = layer[i].forward(h, headMask?[i], outputAttentions, shared, interpolatePosEncoding, height, width);
            if (probs is not null) attentions!.Add(probs);
            h = next;
        }
        all?.Add(h);
        h.MoveToOuterDisposeScope();
        foreach (var t in all ?? []) t.MoveToOuterDisposeScope();
        foreach (var t in attentions ?? []) t.MoveToOuterDisposeScope();
        return (h, all, attentions);
    }
}

/// <summary>Hugging Face's <c>BeitPooler</c>: LayerNorm of the mean patch token (mean pooling), else the CLS token.</summary>
internal sealed class BeitPooler : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm? layernorm;

    /// <summary>Builds the pooler; it has a LayerNorm only with <c>use_mean_pooling</c>.</summary>
    public BeitPooler(BeitConfig config) : base(nameof(BeitPooler))
    {
        if (config.UseMeanPooling) layernorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        var pooled = layernorm is not null
            ? layernorm.call(hiddenStates.narrow(1, 1, hiddenStates.shape[1] - 1).mean([1]))
            : hiddenStates.select(1, 0);
        return pooled.MoveToOuterDisposeScope();
    }
}
