using Microsoft.ML.Beit.Checkpoints;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// Checkpoint tensors looked up by Hugging Face name, as float32 with a checked shape. Accepts both the task-model
/// layout (<c>beit.encoder…</c>, heads at top level) and a bare <c>BeitModel</c> save (<c>encoder…</c>), in the classic
/// or the transformers-v5 spelling (<see cref="BeitWeightNames"/>).
/// </summary>
internal sealed class BeitCheckpointWeights
{
    private readonly IReadOnlyDictionary<string, TensorData> _tensors;
    private readonly string _backbonePrefix;

    public BeitCheckpointWeights(IReadOnlyDictionary<string, TensorData> tensors)
    {
        _tensors = BeitWeightNames.ToClassic(tensors, "the checkpoint tensors");
        _backbonePrefix = tensors.ContainsKey("beit.embeddings.cls_token") || !tensors.ContainsKey("embeddings.cls_token") ? "beit." : "";
    }

    /// <summary>Name of a backbone tensor (under <c>BeitModel</c>), e.g. <c>embeddings.cls_token</c>.</summary>
    public string Backbone(string name) => _backbonePrefix + name;

    public bool Has(string name) => _tensors.ContainsKey(name);

    /// <summary>
    /// The tensor as float32, checking its shape (<see cref="InvalidDataException"/> naming the tensor) and that it is
    /// floating-point (<see cref="CheckpointMismatchException"/>).
    /// </summary>
    public float[] Get(string name, params long[] shape)
    {
        if (!_tensors.TryGetValue(name, out var t))
            throw new InvalidDataException($"The checkpoint has no tensor '{name}'.");
        if (!t.Shape.SequenceEqual(shape))
            throw new InvalidDataException($"Checkpoint tensor '{name}' has shape [{string.Join(",", t.Shape)}], expected [{string.Join(",", shape)}] from the configuration.");
        if (!CheckpointMismatchException.IsFloat(t.DType))
            throw new CheckpointMismatchException("the checkpoint tensors", [], [], [], [(name, "floating-point", t.DType)]);
        return t.ToFloatArray();
    }

    /// <summary>The tensor if present, else null.</summary>
    public float[]? TryGet(string name, params long[] shape) => Has(name) ? Get(name, shape) : null;
}
