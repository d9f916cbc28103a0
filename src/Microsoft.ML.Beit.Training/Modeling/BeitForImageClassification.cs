using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Hugging Face's <c>BeitForImageClassification</c>: <see cref="BeitModel"/> with its pooler, then a linear
/// <c>classifier</c>. The loss follows <c>problem_type</c> (inferred as Hugging Face does when null and written back
/// to <see cref="BeitPreTrainedModel.Config"/>): regression (MSE), single-label (cross-entropy) or multi-label
/// (BCE with logits).
/// </summary>
public sealed class BeitForImageClassification : BeitPreTrainedModel
{
    private readonly BeitModel beit;
    private readonly Linear classifier;

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation).</summary>
    public BeitForImageClassification(BeitConfig config) : base(nameof(BeitForImageClassification), config)
    {
        beit = new BeitModel(config, addPoolingLayer: true, initialize: false);
        classifier = nn.Linear(config.HiddenSize, config.NumLabels);
        RegisterComponents();
        InitWeights();
    }

    /// <summary>Loads a Hugging Face checkpoint folder (<c>config.json</c> + <c>model.safetensors</c> or <c>pytorch_model.bin</c>).</summary>
    /// <param name="folder">The checkpoint folder, or a Hugging Face model id such as <c>microsoft/beit-base-patch16-224</c>.</param>
    /// <param name="config">Overrides the folder's configuration (for example new labels, with <paramref name="strict"/> false).</param>
    /// <param name="strict">Throw on missing or unexpected tensors (wrong shapes always throw).</param>
    /// <exception cref="Microsoft.ML.Beit.Checkpoints.CheckpointMismatchException">The tensors do not fit; each one is named.</exception>
    public static BeitForImageClassification FromPretrained(string folder, BeitConfig? config = null, bool strict = true) =>
        LoadPretrained(folder, config, strict, c => new BeitForImageClassification(c));

    /// <summary>The backbone.</summary>
    public BeitModel Beit => beit;

    /// <summary>Classifies <c>[B, C, H, W]</c> pixels.</summary>
    /// <param name="pixelValues">Normalised pixels.</param>
    /// <param name="labels">Optional: class ids <c>[B]</c> (int64), multi-hot <c>[B, num_labels]</c> (float) or regression targets.</param>
    /// <param name="headMask">Optional head mask, see <see cref="BeitModel.forward"/>.</param>
    /// <param name="outputAttentions">Return each layer's attention probabilities.</param>
    /// <param name="outputHiddenStates">Return the hidden states.</param>
    /// <param name="interpolatePosEncoding">Hugging Face's flag; other resolutions work either way.</param>
    public BeitImageClassifierOutput forward(Tensor pixelValues, Tensor? labels = null, Tensor? headMask = null,
        bool outputAttentions = false, bool outputHiddenStates = false, bool interpolatePosEncoding = false)
    {
        using var scope = NewDisposeScope();
        var outputs = beit.forward(pixelValues, null, headMask, outputAttentions, outputHiddenStates, interpolatePosEncoding);
        var logits = classifier.call(outputs.PoolerOutput!);
        var result = new BeitImageClassifierOutput
        {
            Loss = labels is null ? null : Loss(logits, labels),
            Logits = logits,
            HiddenStates = outputs.HiddenStates,
            Attentions = outputs.Attentions,
        };
        result.MoveToOuterDisposeScope();
        return result;
    }

    private Tensor Loss(Tensor logits, Tensor labels)
    {
        int numLabels = Config.NumLabels;
        Config.ProblemType ??= numLabels == 1 ? "regression"
            : labels.dtype is ScalarType.Int64 or ScalarType.Int32 ? "single_label_classification"
            : "multi_label_classification";
        labels = labels.to(logits.device);
        return Config.ProblemType switch
        {
            "regression" => numLabels == 1
                ? nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to_type(logits.dtype))
                : nn.functional.mse_loss(logits, labels.to_type(logits.dtype)),
            "single_label_classification" => nn.functional.cross_entropy(logits.view(-1, numLabels), labels.view(-1).to_type(ScalarType.Int64)),
            _ => nn.functional.binary_cross_entropy_with_logits(logits, labels.to_type(logits.dtype)),
        };
    }
}

/// <summary>
/// Hugging Face's <c>BeitForMaskedImageModeling</c>: <see cref="BeitModel"/> without pooler, a final
/// <c>layernorm</c> and the <c>lm_head</c> predicting visual tokens for every patch. The loss is cross-entropy over
/// the masked patches, with one label per masked patch in batch-major, row-major order.
/// </summary>
public sealed class BeitForMaskedImageModeling : BeitPreTrainedModel
{
    private readonly BeitModel beit;
    private readonly LayerNorm layernorm;
    private readonly Linear lm_head;

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation).</summary>
    public BeitForMaskedImageModeling(BeitConfig config) : base(nameof(BeitForMaskedImageModeling), config)
    {
        beit = new BeitModel(config, addPoolingLayer: false, initialize: false);
        layernorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps);
        lm_head = nn.Linear(config.HiddenSize, config.VocabSize);
        RegisterComponents();
        InitWeights();
    }

    /// <summary>Loads a Hugging Face checkpoint folder.</summary>
    /// <param name="folder">The checkpoint folder, or a Hugging Face model id such as <c>microsoft/beit-base-patch16-224</c>.</param>
    /// <param name="config">Overrides the folder's configuration.</param>
    /// <param name="strict">Throw on missing or unexpected tensors (wrong shapes always throw).</param>
    /// <exception cref="Microsoft.ML.Beit.Checkpoints.CheckpointMismatchException">The tensors do not fit; each one is named.</exception>
    public static BeitForMaskedImageModeling FromPretrained(string folder, BeitConfig? config = null, bool strict = true) =>
        LoadPretrained(folder, config, strict, c => new BeitForMaskedImageModeling(c));

    /// <summary>The backbone.</summary>
    public BeitModel Beit => beit;

    /// <summary>Predicts visual tokens <c>[B, N, vocab_size]</c> for <c>[B, C, H, W]</c> pixels.</summary>
    /// <param name="pixelValues">Normalised pixels.</param>
    /// <param name="boolMaskedPos"><c>[B, N]</c> mask of patches replaced by the mask token.</param>
    /// <param name="labels">Optional visual-token ids of the masked patches, <c>[number of masked patches]</c>.</param>
    /// <param name="headMask">Optional head mask, see <see cref="BeitModel.forward"/>.</param>
    /// <param name="outputAttentions">Return each layer's attention probabilities.</param>
    /// <param name="outputHiddenStates">Return the hidden states.</param>
    /// <param name="interpolatePosEncoding">Hugging Face's flag; other resolutions work either way.</param>
    public BeitMaskedLMOutput forward(Tensor pixelValues, Tensor? boolMaskedPos = null, Tensor? labels = null, Tensor? headMask = null,
        bool outputAttentions = false, bool outputHiddenStates = false, bool interpolatePosEncoding = false)
    {
        using var scope = NewDisposeScope();
        var outputs = beit.forward(pixelValues, boolMaskedPos, headMask, outputAttentions, outputHiddenStates, interpolatePosEncoding);
        var sequence = layernorm.call(outputs.LastHiddenState);
        var logits = BeitAutocast.Linear(lm_head, sequence.narrow(1, 1, sequence.shape[1] - 1));
        Tensor? loss = null;
        if (labels is not null)
        {
            if (boolMaskedPos is null) throw new ArgumentException("labels need bool_masked_pos: they are the ids of the masked patches.", nameof(labels));
            var masked = logits.index(boolMaskedPos.to_type(ScalarType.Bool).to(logits.device));
            loss = nn.functional.cross_entropy(masked, labels.to(logits.device).to_type(ScalarType.Int64));
        }
        var result = new BeitMaskedLMOutput
        {
            Loss = loss,
            Logits = logits,
            HiddenStates = outputs.HiddenStates,
            Attentions = outputs.Attentions,
        };
        result.MoveToOuterDisposeScope();
        return result;
    }
}
