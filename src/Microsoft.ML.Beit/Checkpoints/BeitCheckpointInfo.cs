using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// What a Hugging Face checkpoint folder holds, as <see cref="BeitCheckpoint.Describe"/> reads it: the configuration, the
/// image processor settings, the labels and every tensor's name, dtype and shape.
/// </summary>
public sealed record BeitCheckpointInfo
{
    internal BeitCheckpointInfo() { }

    /// <summary>The local checkpoint folder that was read (for a Hub model id, its cache folder).</summary>
    public required string Folder { get; init; }

    /// <summary><c>config.json</c>'s <c>model_type</c> (<c>beit</c>, <c>data2vec-vision</c>), or <c>null</c> when it has none (timm).</summary>
    public string? ModelType { get; init; }

    /// <summary>The configuration, normalized (<c>config.json</c>'s absent keys take Hugging Face's defaults).</summary>
    public required BeitConfig Config { get; init; }

    /// <summary>The folder's <c>preprocessor_config.json</c>, or <c>null</c> when it has none.</summary>
    public BeitImageProcessor? Preprocessor { get; init; }

    /// <summary>Every label name, indexed by class id (<c>LABEL_i</c> where <c>config.json</c> names none).</summary>
    public required IReadOnlyList<string> Labels { get; init; }

    /// <summary>
    /// Every tensor of the weights, under the name the file stores it by (not renamed to the classic Hugging Face
    /// spelling), sorted by name (ordinal).
    /// </summary>
    public required IReadOnlyList<(string Name, TensorDType DType, long[] Shape)> Tensors { get; init; }

    /// <summary>
    /// The weights files read, relative to <see cref="Folder"/>: <c>model.safetensors</c> or <c>pytorch_model.bin</c>;
    /// for a sharded checkpoint its <c>*.index.json</c> followed by its shards.
    /// </summary>
    public required IReadOnlyList<string> WeightFiles { get; init; }

    /// <summary>The number of elements over all tensors (buffers such as <c>relative_position_index</c> included).</summary>
    public long Parameters => Tensors.Aggregate(0L, (n, t) => checked(n + t.Shape.Aggregate(1L, (a, d) => checked(a * d))));
}
