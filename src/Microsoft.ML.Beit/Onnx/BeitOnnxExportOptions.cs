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

/// <summary>The numeric precision of an exported graph (see README, "Quantized inference").</summary>
public enum BeitOnnxPrecision
{
    /// <summary>float32 weights and compute (the default).</summary>
    Float32,
    /// <summary>
    /// Dynamic int8 quantization for the CPU: the QKV, attention-output, MLP and classifier projection weights are
    /// stored as int8, symmetric, one scale per output channel; their float inputs are quantized per tensor (uint8,
    /// asymmetric) at run time. LayerNorm, softmax, attention scores with the relative bias, and GELU stay float32.
    /// Inputs and outputs stay float32.
    /// </summary>
    Int8,
    /// <summary>
    /// float16 weights and compute for ONNX Runtime's CUDA execution provider; inputs and outputs stay float32 (a Cast at
    /// each boundary). LayerNormalization keeps float32 statistics (<c>stash_type</c> = 1). Scoring such a graph on the
    /// CPU is refused by <see cref="Scoring.BeitOnnxSession"/> and the ML.NET stages, because ONNX Runtime's CPU provider
    /// lacks float16 kernels for most of it and would run it slower than float32.
    /// </summary>
    Float16,
}

/// <summary>Options of <see cref="BeitOnnxExporter"/>.</summary>
public sealed class BeitOnnxExportOptions
{
    /// <summary>
    /// Input height in pixels; null means the checkpoint's <c>image_size</c>. Must be a multiple of <c>patch_size</c>.
    /// At another resolution the relative position tables are resized as Hugging Face does (bilinear,
    /// <c>modeling_beit.py</c>'s <c>BeitRelativePositionBias.forward</c> with <c>interpolate_pos_encoding</c>).
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
    /// Also output Hugging Face's <c>attentions</c> (<c>output_attentions=True</c>): one float32 output
    /// <c>attentions.{layer}</c> <c>[batch, heads, tokens, tokens]</c> per exported encoder layer (see
    /// <see cref="BeitOnnxAttention"/>). Off by default: the fused attention operator cannot expose its probabilities, so
    /// this graph computes attention in standard operators and runs slower. Not for <see cref="BeitOnnxPrecision.Float16"/>.
    /// </summary>
    public bool OutputAttentions { get; set; }

    /// <summary>Numeric precision of the graph; <see cref="BeitOnnxPrecision.Float32"/> by default.</summary>
    public BeitOnnxPrecision Precision { get; set; } = BeitOnnxPrecision.Float32;

    /// <summary>
    /// With <see cref="BeitOnnxPrecision.Int8"/>: quantize weights to 7 bits (−63…63) instead of 8 bits. ONNX Runtime
    /// multiplies uint8 activations by int8 weights with AVX2's <c>vpmaddubsw</c> on x64 CPUs without VNNI, which adds
    /// pairs of products into saturating int16: 2·255·127 = 64 770 overflows 32 767, 2·255·63 = 32 130 does not.
    /// ONNX Runtime's quantization guide recommends this "reduce range" there; on CPUs with AVX-512 VNNI or AVX-VNNI
    /// the products accumulate in int32 and 8-bit weights are exact. Null (the default) decides from the exporting CPU:
    /// 7 bits when it lacks VNNI. Set it explicitly when exporting for another machine.
    /// </summary>
    public bool? Int8ReduceRange { get; set; }

    /// <summary>Which ONNX Runtime operators compute the int8 projections. Internal: for the benchmarks.</summary>
    internal BeitInt8MatMul Int8MatMul { get; set; } = BeitInt8MatMul.DynamicQuantizeMatMul;

    /// <summary>
    /// With <see cref="BeitOnnxOperatorSet.OnnxRuntimeFused"/>: one <c>com.microsoft.Attention</c> per layer (true), or the
    /// standard attention subgraph between the fused layer norms and GELU (false). Internal: for the benchmarks.
    /// </summary>
    internal bool AttentionOperator { get; set; } = true;
}

/// <summary>Operators of an int8 projection (measured against each other by the benchmark; see README).</summary>
internal enum BeitInt8MatMul
{
    /// <summary><c>com.microsoft.DynamicQuantizeMatMul</c>: quantizes A, int8 GEMM, dequantizes and adds the bias in one node.</summary>
    DynamicQuantizeMatMul,
    /// <summary><c>DynamicQuantizeLinear</c> (shared by every consumer of a value) + <c>com.microsoft.MatMulIntegerToFloat</c>.</summary>
    MatMulIntegerToFloat,
    /// <summary>Standard ONNX: <c>DynamicQuantizeLinear</c> + <c>MatMulInteger</c> + Cast + scale Mul + bias Add.</summary>
    MatMulInteger,
}
