namespace Microsoft.ML.Beit.Onnx;

/// <summary>Which operators an exported graph may use.</summary>
public enum BeitOnnxOperatorSet
{
    /// <summary>
    /// ONNX opset 17 plus ONNX Runtime's <c>com.microsoft</c> fused operators (<c>Attention</c> with an attention-bias
    /// input, <c>SkipLayerNormalization</c>, exact-erf <c>BiasGelu</c>/<c>Gelu</c>). The fastest choice on ONNX Runtime;
    /// runs only on ONNX Runtime.
    /// </summary>
    OnnxRuntimeFused,
    /// <summary>Standard ONNX opset 17 operators only, for any ONNX runtime.</summary>
    Standard,
}

/// <summary>Options of <see cref="BeitOnnxExporter"/>.</summary>
public sealed class BeitOnnxExportOptions
{
    /// <summary>
    /// Input height in pixels; null means the checkpoint's <c>image_size</c>. Must be a multiple of <c>patch_size</c>.
    /// At another resolution the relative position tables are resized as Hugging Face does (bilinear, spec §3.4).
    /// </summary>
    public int? ImageHeight { get; set; }

    /// <summary>Input width in pixels; null means the checkpoint's <c>image_size</c>. Must be a multiple of <c>patch_size</c>.</summary>
    public int? ImageWidth { get; set; }

    /// <summary>The operators the graph may use; <see cref="BeitOnnxOperatorSet.OnnxRuntimeFused"/> by default (see README for the measurements).</summary>
    public BeitOnnxOperatorSet OperatorSet { get; set; } = BeitOnnxOperatorSet.OnnxRuntimeFused;

    /// <summary>
    /// For <see cref="BeitOnnxTask.SemanticSegmentation"/>: also output <c>labels [B, H, W]</c> (int64), the argmax over classes
    /// of the logits bilinearly upsampled to the input size, as <c>post_process_semantic_segmentation</c> does with a
    /// target size equal to the input.
    /// </summary>
    public bool SegmentationLabels { get; set; }

    /// <summary>
    /// With <see cref="BeitOnnxOperatorSet.OnnxRuntimeFused"/>: one <c>com.microsoft.Attention</c> per layer (true), or the
    /// standard attention subgraph between the fused layer norms and GELU (false). Internal: for the benchmarks.
    /// </summary>
    internal bool AttentionOperator { get; set; } = true;
}
