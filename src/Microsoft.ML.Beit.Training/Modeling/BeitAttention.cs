using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Hugging Face's <c>BeitSelfAttention</c>: query, key (no bias) and value projections split into heads, scores
/// <c>QKᵀ/√dh + bias</c> (per-layer relative bias, plus the shared one if given), softmax, dropout, optional head mask.
/// Without attention outputs or a head mask it runs PyTorch's fused scaled-dot-product attention, as Hugging Face's
/// default SDPA path does; the result is the same to float rounding.
/// </summary>
internal sealed class BeitSelfAttention : nn.Module
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly Dropout dropout;
    private readonly BeitRelativePositionBias? relative_position_bias;
    private readonly int _heads, _headDim, _patchSize;
    private readonly double _dropoutProb, _scale;

    /// <summary>Builds the projections; with <paramref name="ownRelativePositionBias"/>, also this layer's relative bias table.</summary>
    public BeitSelfAttention(BeitConfig config, bool ownRelativePositionBias) : base(nameof(BeitSelfAttention))
    {
        _heads = config.NumAttentionHeads;
        _headDim = config.HeadDim;
        _patchSize = config.PatchSize;
        _dropoutProb = config.AttentionProbsDropoutProb;
        _scale = 1.0 / Math.Sqrt(_headDim);
        query = nn.Linear(config.HiddenSize, config.HiddenSize);
        key = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: false);
        value = nn.Linear(config.HiddenSize, config.HiddenSize);
        dropout = nn.Dropout(config.AttentionProbsDropoutProb);
        if (ownRelativePositionBias) relative_position_bias = new BeitRelativePositionBias(config);
        RegisterComponents();
    }

    /// <summary>Attends over <c>[B, T, D]</c> tokens; returns the context <c>[B, T, D]</c> and, if asked, the probabilities <c>[B, heads, T, T]</c>.</summary>
    /// <param name="hiddenStates">Normalised tokens.</param>
    /// <param name="headMask">Optional multiplier of the attention probabilities, broadcastable to <c>[B, heads, T, T]</c>.</param>
    /// <param name="outputAttentions">Return the attention probabilities.</param>
    /// <param name="sharedRelativePositionBias">The encoder's shared bias <c>[1, heads, T, T]</c>, if the model has one.</param>
    /// <param name="interpolatePosEncoding">Hugging Face's flag, passed to the relative bias.</param>
    /// <param name="height">Input pixel height (the relative bias window is <c>height / patch_size</c>).</param>
    /// <param name="width">Input pixel width.</param>
    public (Tensor Context, Tensor? Probabilities) forward(Tensor hiddenStates, Tensor? headMask, bool outputAttentions,
        Tensor? sharedRelativePositionBias, bool interpolatePosEncoding, long height, long width)
    {
        using var scope = NewDisposeScope();
        long batch = hiddenStates.shape[0], tokens = hiddenStates.shape[1];
        Tensor Heads(Tensor x) => x.view(batch, tokens, _heads, _headDim).permute(0, 2, 1, 3);
        var q = Heads(BeitAutocast.Linear(query, hiddenStates));
        var k = Heads(BeitAutocast.Linear(key, hiddenStates));
        var v = Heads(BeitAutocast.Linear(value, hiddenStates));

        Tensor? bias = null;
        if (relative_position_bias is not null)
            bias = relative_position_bias.forward((int)(height / _patchSize), (int)(width / _patchSize), interpolatePosEncoding, tokens);
        if (sharedRelativePositionBias is not null)
            bias = bias is null ? sharedRelativePositionBias : bias + sharedRelativePositionBias;

        Tensor context;
        Tensor? probs = null;
        if (outputAttentions || headMask is not null)
        {
            var scores = matmul(q, k.transpose(-1, -2)) * _scale;
            if (bias is not null) scores = scores + bias;
            probs = dropout.call(nn.functional.softmax(scores, -1));
            if (headMask is not null) probs = probs * headMask;
            context = matmul(probs, v);
        }
        else
        {
            context = nn.functional.scaled_dot_product_attention(q, k, v, bias, training ? _dropoutProb : 0.0);
        }
        context = context.permute(0, 2, 1, 3).contiguous().view(batch, tokens, _heads * _headDim);
        context.MoveToOuterDisposeScope();
        if (outputAttentions) probs!.MoveToOuterDisposeScope();
        return (context, outputAttentions ? probs : null);
    }
}

/// <summary>Hugging Face's <c>BeitSelfOutput</c>: the attention output projection and dropout (the residual lives in the layer).</summary>
internal sealed class BeitSelfOutput : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly Dropout dropout;

    /// <summary>Builds the projection.</summary>
    public BeitSelfOutput(BeitConfig config) : base(nameof(BeitSelfOutput))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize);
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

/// <summary>Hugging Face's <c>BeitAttention</c>: self-attention (<c>attention</c>) followed by its output projection (<c>output</c>).</summary>
internal sealed class BeitAttention : nn.Module
{
    private readonly BeitSelfAttention attention;
    private readonly BeitSelfOutput output;

    /// <summary>Builds the block; see <see cref="BeitSelfAttention(BeitConfig, bool)"/>.</summary>
    public BeitAttention(BeitConfig config, bool ownRelativePositionBias) : base(nameof(BeitAttention))
    {
        attention = new BeitSelfAttention(config, ownRelativePositionBias);
        output = new BeitSelfOutput(config);
        RegisterComponents();
    }

    /// <summary>See <see cref="BeitSelfAttention.forward"/>; the context is projected by <c>output</c>.</summary>
    public (Tensor Output, Tensor? Probabilities) forward(Tensor hiddenStates, Tensor? headMask, bool outputAttentions,
        Tensor? sharedRelativePositionBias, bool interpolatePosEncoding, long height, long width)
    {
        var (context, probs) = attention.forward(hiddenStates, headMask, outputAttentions, sharedRelativePositionBias, interpolatePosEncoding, height, width);
        using (context)
        {
            return (output.call(context), probs);
        }
    }
}
