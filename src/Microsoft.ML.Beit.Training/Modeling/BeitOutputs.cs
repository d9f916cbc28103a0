using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Base of the model outputs: owns its tensors; dispose it (or let the enclosing dispose scope do it).</summary>
public abstract class BeitOutputBase : IDisposable
{
    /// <summary>Optional outputs: the embeddings output followed by each layer's output (L+1 tensors <c>[B, T, D]</c>).</summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; init; }
    /// <summary>Optional outputs: each layer's attention probabilities <c>[B, heads, T, T]</c>.</summary>
    public IReadOnlyList<Tensor>? Attentions { get; init; }

    /// <summary>Every tensor this output holds.</summary>
    protected virtual IEnumerable<Tensor?> Tensors() => (HiddenStates ?? []).Concat(Attentions ?? []);

    /// <summary>Moves every tensor to the dispose scope enclosing the current one (used by the models' forward).</summary>
    internal void MoveToOuterDisposeScope()
    {
        foreach (var t in Tensors().Distinct()) t?.MoveToOuterDisposeScope();
    }

    /// <summary>Detaches every tensor from dispose scopes, so the caller owns them until <see cref="Dispose()"/>.</summary>
    public void DetachFromDisposeScope()
    {
        foreach (var t in Tensors().Distinct()) t?.DetachFromDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the tensors.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing) return;
        foreach (var t in Tensors().Distinct()) t?.Dispose();
    }
}

/// <summary>Hugging Face's <c>BeitModelOutputWithPooling</c>.</summary>
public sealed class BeitModelOutput : BeitOutputBase
{
    /// <summary>The last layer's tokens <c>[B, T, D]</c> (after <c>beit.layernorm</c> when the model has one).</summary>
    public required Tensor LastHiddenState { get; init; }
    /// <summary><c>[B, D]</c>: LayerNorm of the mean patch token, or the CLS token; null without a pooling layer.</summary>
    public Tensor? PoolerOutput { get; init; }

    /// <inheritdoc />
    protected override IEnumerable<Tensor?> Tensors() => base.Tensors().Append(LastHiddenState).Append(PoolerOutput);
}

/// <summary>Hugging Face's <c>ImageClassifierOutput</c>.</summary>
public sealed class BeitImageClassifierOutput : BeitOutputBase
{
    /// <summary>The loss (scalar) when labels were given.</summary>
    public Tensor? Loss { get; init; }
    /// <summary><c>[B, num_labels]</c>.</summary>
    public required Tensor Logits { get; init; }

    /// <inheritdoc />
    protected override IEnumerable<Tensor?> Tensors() => base.Tensors().Append(Loss).Append(Logits);
}

/// <summary>Hugging Face's <c>MaskedLMOutput</c> for BEiT's masked image modeling.</summary>
public sealed class BeitMaskedLMOutput : BeitOutputBase
{
    /// <summary>Cross-entropy over the masked patches (scalar) when labels were given.</summary>
    public Tensor? Loss { get; init; }
    /// <summary><c>[B, N, vocab_size]</c>: visual-token logits for every patch.</summary>
    public required Tensor Logits { get; init; }

    /// <inheritdoc />
    protected override IEnumerable<Tensor?> Tensors() => base.Tensors().Append(Loss).Append(Logits);
}

/// <summary>Hugging Face's <c>SemanticSegmenterOutput</c>, plus the auxiliary logits and the FPN maps it computes on the way.</summary>
public sealed class BeitSemanticSegmenterOutput : BeitOutputBase
{
    /// <summary><c>CE(main) + auxiliary_loss_weight·CE(aux)</c> (scalar) when labels were given.</summary>
    public Tensor? Loss { get; init; }
    /// <summary><c>[B, num_labels, H/4, W/4]</c> logits of the UperNet head.</summary>
    public required Tensor Logits { get; init; }
    /// <summary><c>[B, num_labels, H/16, W/16]</c> logits of the FCN auxiliary head (null without one). Not part of Hugging Face's output.</summary>
    public Tensor? AuxiliaryLogits { get; init; }
    /// <summary>The four FPN maps fed to the decode head (strides 4, 8, 16, 32 for patch 16). Not part of Hugging Face's output.</summary>
    public required IReadOnlyList<Tensor> FeatureMaps { get; init; }

    /// <inheritdoc />
    protected override IEnumerable<Tensor?> Tensors() => base.Tensors().Append(Loss).Append(Logits).Append(AuxiliaryLogits).Concat(FeatureMaps);
}
