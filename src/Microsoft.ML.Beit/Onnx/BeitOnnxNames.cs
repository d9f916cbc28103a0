namespace Microsoft.ML.Beit.Onnx;

/// <summary>Input, output and metadata names of the exported graphs (Hugging Face's output names).</summary>
internal static class BeitOnnxNames
{
    /// <summary>Input: float32 <c>[batch, channels, height, width]</c>, normalised as the checkpoint's image processor does.</summary>
    public const string PixelValues = "pixel_values";
    /// <summary>Input of <see cref="BeitOnnxTask.MaskedImageModeling"/>: bool <c>[batch, num_patches]</c>, true = masked.</summary>
    public const string BoolMaskedPos = "bool_masked_pos";
    /// <summary>Output of <see cref="BeitOnnxTask.Features"/>: <c>[batch, num_patches + 1, hidden_size]</c>.</summary>
    public const string LastHiddenState = "last_hidden_state";
    /// <summary>Output of <see cref="BeitOnnxTask.Features"/>: <c>[batch, hidden_size]</c>.</summary>
    public const string PoolerOutput = "pooler_output";
    /// <summary>Output of classification, segmentation and masked image modeling.</summary>
    public const string Logits = "logits";
    /// <summary>Output of <see cref="BeitOnnxTask.ImageClassification"/>: softmax of the logits.</summary>
    public const string Probabilities = "probabilities";
    /// <summary>Optional output of <see cref="BeitOnnxTask.SemanticSegmentation"/>: int64 <c>[batch, height, width]</c> class map.</summary>
    public const string Labels = "labels";

    /// <summary>Metadata key: the task (<see cref="BeitOnnxTask"/> name).</summary>
    public const string MetadataTask = "beit.task";
    /// <summary>Metadata key: the Hugging Face <c>config.json</c> text of the exported checkpoint.</summary>
    public const string MetadataConfig = "beit.config";
    /// <summary>Metadata key: the input resolution as <c>HxW</c>.</summary>
    public const string MetadataImageSize = "beit.image_size";
    /// <summary>Metadata key: the operator set (<see cref="BeitOnnxOperatorSet"/> name).</summary>
    public const string MetadataOperatorSet = "beit.operator_set";
    /// <summary>Metadata key: the numeric precision (<see cref="BeitOnnxPrecision"/> name).</summary>
    public const string MetadataPrecision = "beit.precision";
    /// <summary>Metadata key of int8 graphs: the weight bits, 8 or 7 (reduce-range, for CPUs without VNNI).</summary>
    public const string MetadataInt8WeightBits = "beit.int8_weight_bits";
}
