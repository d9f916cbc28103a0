using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Hugging Face's <c>BeitModel</c>: embeddings, encoder, the final LayerNorm (only when <c>use_mean_pooling</c> is
/// false) and the pooler.
/// </summary>
public sealed class BeitModel : BeitPreTrainedModel
{
    private readonly BeitEmbeddings embeddings;
    private readonly BeitEncoder encoder;
    private readonly LayerNorm? layernorm;
    private readonly BeitPooler? pooler;

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation).</summary>
    /// <param name="config">The configuration.</param>
    /// <param name="addPoolingLayer">Add <c>pooler</c> (Hugging Face omits it inside the MIM and segmentation models).</param>
    public BeitModel(BeitConfig config, bool addPoolingLayer = true) : this(config, addPoolingLayer, initialize: true)
    {
    }

    // Head models initialise the whole tree once themselves.
    internal BeitModel(BeitConfig config, bool addPoolingLayer, bool initialize) : base(nameof(BeitModel), config)
    {
        embeddings = new BeitEmbeddings(config);
        encoder = new BeitEncoder(config);
        if (!config.UseMeanPooling) layernorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        if (addPoolingLayer) pooler = new BeitPooler(config);
        RegisterComponents();
        if (initialize) InitWeights();
    }

    /// <summary>Loads a Hugging Face checkpoint folder (<c>config.json</c> + <c>model.safetensors</c> or <c>pytorch_model.bin</c>).</summary>
    /// <param name="folder">The checkpoint folder, or a Hugging Face model id such as <c>microsoft/beit-base-patch16-224</c>.</param>
    /// <param name="config">Overrides the folder's configuration (for example to change labels).</param>
    /// <param name="strict">Throw on missing or unexpected tensors (wrong shapes always throw).</param>
    /// <exception cref="Microsoft.ML.Beit.Checkpoints.CheckpointMismatchException">The tensors do not fit; each one is named.</exception>
    public static BeitModel FromPretrained(string folder, BeitConfig? config = null, bool strict = true) =>
        LoadPretrained(folder, config, strict, c => new BeitModel(c));

    /// <summary>The encoder (its layers carry the per-layer parameters).</summary>
    internal BeitEncoder Encoder => encoder;

    /// <summary>Runs the backbone on <c>[B, C, H, W]</c> pixels.</summary>
    /// <param name="pixelValues">Normalised pixels.</param>
    /// <param name="boolMaskedPos">Optional <c>[B, N]</c> mask of patches replaced by the mask token.</param>
    /// <param name="headMask">Optional head mask <c>[heads]</c> or <c>[layers, heads]</c> (1 keeps a head).</param>
    /// <param name="outputAttentions">Return each layer's attention probabilities.</param>
    /// <param name="outputHiddenStates">Return the hidden states (embeddings + every layer).</param>
    /// <param name="interpolatePosEncoding">Hugging Face's flag; relative biases follow the input resolution either way.</param>
    public BeitModelOutput forward(Tensor pixelValues, Tensor? boolMaskedPos = null, Tensor? headMask = null,
        bool outputAttentions = false, bool outputHiddenStates = false, bool interpolatePosEncoding = false)
    {
        using var scope = NewDisposeScope();
        var embedded = embeddings.call(pixelValues, boolMaskedPos);
        var (last, hidden, attentions) = encoder.forward(embedded, PerLayerHeadMask(headMask), outputAttentions, outputHiddenStates,
            interpolatePosEncoding, pixelValues.shape[2], pixelValues.shape[3]);
        var sequence = layernorm is null ? last : layernorm.call(last);
        var output = new BeitModelOutput
        {
            LastHiddenState = sequence,
            PoolerOutput = pooler?.call(sequence),
            HiddenStates = hidden,
            Attentions = attentions,
        };
        output.MoveToOuterDisposeScope();
        return output;
    }

    // Hugging Face's get_head_mask: [heads] is shared by every layer, [layers, heads] is per layer; each becomes [1, heads, 1, 1].
    private IReadOnlyList<Tensor?>? PerLayerHeadMask(Tensor? headMask)
    {
        if (headMask is null) return null;
        int layers = Config.NumHiddenLayers, heads = Config.NumAttentionHeads;
        if (headMask.dim() == 1 && headMask.shape[0] == heads)
            return Enumerable.Repeat<Tensor?>(headMask.view(1, heads, 1, 1), layers).ToList();
        if (headMask.dim() == 2 && headMask.shape[0] == layers && headMask.shape[1] == heads)
            return Enumerable.Range(0, layers).Select(i => (Tensor?)headMask[i].view(1, heads, 1, 1)).ToList();
        throw new ArgumentException($"head_mask must be [{heads}] or [{layers}, {heads}]; got [{string.Join(",", headMask.shape)}].", nameof(headMask));
    }
}
