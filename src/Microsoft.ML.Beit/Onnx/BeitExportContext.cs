using Microsoft.ML.Beit.Onnx.Proto;
using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// Everything one export shares: the graph under construction, configuration, weights, the chosen resolution and
/// operator set, plus the small building blocks (linear, layer norm, activation, folded conv, bilinear resize) that
/// every stage uses.
/// </summary>
internal sealed class BeitExportContext
{
    public BeitExportContext(BeitConfig config, BeitCheckpointWeights weights, int imageHeight, int imageWidth, bool fused, bool attentionOperator = true,
        Int8Settings? int8 = null)
    {
        Int8 = int8;
        UseAttentionOperator = attentionOperator;
        Config = config;
        Weights = weights;
        ImageHeight = imageHeight;
        ImageWidth = imageWidth;
        Fused = fused;
        GridHeight = imageHeight / config.PatchSize;
        GridWidth = imageWidth / config.PatchSize;
    }

    public OnnxGraphBuilder B { get; } = new();
    /// <summary>How the projections are quantized; null for float graphs.</summary>
    public Int8Settings? Int8 { get; }
    public BeitConfig Config { get; }
    public BeitCheckpointWeights Weights { get; }
    /// <summary>True for <see cref="BeitOnnxOperatorSet.OnnxRuntimeFused"/>.</summary>
    public bool Fused { get; }
    /// <summary>With the fused set: one <c>com.microsoft.Attention</c> per layer, else the standard attention subgraph.</summary>
    public bool UseAttentionOperator { get; }
    public int ImageHeight { get; }
    public int ImageWidth { get; }
    public int GridHeight { get; }
    public int GridWidth { get; }
    public int NumPatches => GridHeight * GridWidth;
    /// <summary>Sequence length: patches plus CLS.</summary>
    public int Tokens => NumPatches + 1;
    public int Hidden => Config.HiddenSize;

    /// <summary>The symbolic batch dimension of every input and output.</summary>
    public const string Batch = "batch";

    private readonly Dictionary<string, string> _shared = new();

    /// <summary>A value created once per graph (e.g. a shape constant used by every layer).</summary>
    public string Shared(string key, Func<string> create) => _shared.TryGetValue(key, out var v) ? v : _shared[key] = create();

    // ---- weight helpers -----------------------------------------------------------------------------------------

    /// <summary>A PyTorch Linear weight <c>[out, in]</c> transposed to the <c>[in, out]</c> layout MatMul wants.</summary>
    public static float[] Transpose(float[] w, int rows, int cols)
    {
        var t = new float[w.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                t[c * rows + r] = w[r * cols + c];
        return t;
    }

    /// <summary>Multiplies each output row of <paramref name="w"/> <c>[out, in]</c> by <paramref name="scale"/>[row].</summary>
    public static float[] ScaleRows(float[] w, float[] scale)
    {
        int cols = w.Length / scale.Length;
        var r = new float[w.Length];
        for (int o = 0; o < scale.Length; o++)
            for (int i = 0; i < cols; i++)
                r[o * cols + i] = w[o * cols + i] * scale[o];
        return r;
    }

    public static float[] Mul(float[] a, float[] b) => a.Select((x, i) => x * b[i]).ToArray();

    // ---- building blocks ----------------------------------------------------------------------------------------

    /// <summary>Int8 projection settings: 7-bit weights on CPUs without VNNI, and the operators used.</summary>
    public sealed record Int8Settings(bool ReduceRange, BeitInt8MatMul MatMul);

    /// <summary>
    /// Symmetric per-output-channel quantization of a <c>[in, out]</c> weight: <c>scale[o] = max_i |w[i, o]| / qmax</c>
    /// (qmax = 127, or 63 with reduce-range), <c>q = round(w / scale)</c> (round half to even), zero point 0. Each weight
    /// is then off by at most <c>scale[o] / 2</c>. An all-zero column gets scale 1 so that nothing divides by zero.
    /// </summary>
    public static (sbyte[] Values, float[] Scales) QuantizeWeights(float[] weightInOut, int inFeatures, int outFeatures, bool reduceRange)
    {
        int qmax = reduceRange ? 63 : 127;
        var scales = new float[outFeatures];
        for (int i = 0; i < inFeatures; i++)
            for (int o = 0; o < outFeatures; o++)
                scales[o] = Math.Max(scales[o], Math.Abs(weightInOut[i * outFeatures + o]));
        for (int o = 0; o < outFeatures; o++)
        {
            if (!float.IsFinite(scales[o])) throw new InvalidDataException($"A projection weight column holds {scales[o]}; it cannot be quantized.");
            scales[o] = scales[o] > 0 ? scales[o] / qmax : 1f;
        }
        var q = new sbyte[weightInOut.Length];
        for (int i = 0; i < inFeatures; i++)
            for (int o = 0; o < outFeatures; o++)
                q[i * outFeatures + o] = (sbyte)Math.Clamp(MathF.Round(weightInOut[i * outFeatures + o] / scales[o]), -qmax, qmax);
        return (q, scales);
    }

    private readonly Dictionary<string, string[]> _quantized = new(StringComparer.Ordinal);

    /// <summary>
    /// A transformer projection <c>x·W (+ b)</c>: a float MatMul, or with <see cref="Int8"/> an int8 GEMM whose weights are
    /// quantized here and whose input is quantized per tensor at run time (uint8, asymmetric, by ONNX Runtime's
    /// <c>DynamicQuantizeLinear</c> rule: scale = (max(x, 0) − min(x, 0)) / 255). A value feeding several projections is
    /// quantized once.
    /// </summary>
    public string Projection(string x, string name, float[] weightInOut, int inFeatures, int outFeatures, float[]? bias)
    {
        if (Int8 is not { } q) return Linear(x, name, weightInOut, inFeatures, outFeatures, bias);
        var (values, scales) = QuantizeWeights(weightInOut, inFeatures, outFeatures, q.ReduceRange);
        var w = B.Initializer(name + ".weight_quantized", values, inFeatures, outFeatures);
        var ws = B.Initializer(name + ".weight_scale", scales, outFeatures);
        var b = bias == null ? "" : B.Initializer(name + ".bias", bias, outFeatures);
        var op = Fused ? q.MatMul : BeitInt8MatMul.MatMulInteger;
        if (op == BeitInt8MatMul.DynamicQuantizeMatMul)
            return B.MsOp("DynamicQuantizeMatMul", name + ".DynamicQuantizeMatMul", bias == null ? [x, w, ws] : [x, w, ws, "", b]);

        // DynamicQuantizeLinear outputs (x_q uint8, x_scale, x_zero_point), shared by every projection of x.
        if (!_quantized.TryGetValue(x, out var xq))
            _quantized[x] = xq = B.Node("DynamicQuantizeLinear", x + ".DynamicQuantizeLinear", [x], 3);
        if (op == BeitInt8MatMul.MatMulIntegerToFloat)
            return B.MsOp("MatMulIntegerToFloat", name + ".MatMulIntegerToFloat",
                bias == null ? [xq[0], w, xq[1], ws, xq[2]] : [xq[0], w, xq[1], ws, xq[2], "", b]);

        // Standard ONNX: int32 = (x_q − x_zp)·w_q; y = int32 · x_scale · w_scale (+ b). ONNX Runtime fuses this to MatMulIntegerToFloat.
        var acc = B.Op("MatMulInteger", name + ".MatMulInteger", xq[0], w, xq[2]);
        var f = B.Op("Cast", name + ".Cast", [acc], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float));
        var y = B.Op("Mul", name + ".weight_scale.Mul", B.Op("Mul", name + ".input_scale.Mul", f, xq[1]), ws);
        return bias == null ? y : B.Op("Add", name + ".Add", y, b);
    }

    /// <summary><c>x·Wᵀ (+ b)</c> for a PyTorch Linear weight <c>[out, in]</c> already transposed to <c>[in, out]</c>.</summary>
    public string Linear(string x, string name, float[] weightInOut, int inFeatures, int outFeatures, float[]? bias)
    {
        var w = B.Initializer(name + ".weight", weightInOut, inFeatures, outFeatures);
        var y = B.Op("MatMul", name + ".MatMul", x, w);
        if (bias == null) return y;
        return B.Op("Add", name + ".Add", y, B.Initializer(name + ".bias", bias, outFeatures));
    }

    /// <summary>LayerNormalization (opset 17) over the last axis with the configuration's epsilon.</summary>
    public string LayerNorm(string x, string name, float[] gamma, float[] beta) =>
        B.Op("LayerNormalization", name,
            [x, B.Initializer(name + ".weight", gamma, gamma.Length), B.Initializer(name + ".bias", beta, beta.Length)],
            Int("axis", -1), Float("epsilon", (float)Config.LayerNormEps));

    /// <summary>LayerNorm weights of a Hugging Face module (<c>name.weight</c>, <c>name.bias</c>).</summary>
    public (float[] Gamma, float[] Beta) LayerNormWeights(string name, int size) =>
        (Weights.Get(name + ".weight", size), Weights.Get(name + ".bias", size));

    /// <summary>The exact erf GELU: opset-17 <c>x·0.5·(1+erf(x/√2))</c>, the pattern ONNX Runtime fuses, or <c>com.microsoft.Gelu</c>.</summary>
    public string Gelu(string x, string name)
    {
        if (Fused) return B.MsOp("Gelu", name, [x]);
        var d = B.Op("Div", name + ".Div", x, B.Scalar(MathF.Sqrt(2f)));
        var e = B.Op("Erf", name + ".Erf", d);
        var a = B.Op("Add", name + ".Add", e, B.Scalar(1f));
        var m = B.Op("Mul", name + ".Mul", x, a);
        return B.Op("Mul", name + ".Mul_1", m, B.Scalar(0.5f));
    }

    /// <summary>
    /// <c>act(x + bias)</c> for the configuration's <c>hidden_act</c>. Exact GELU with the fused operator set becomes one
    /// <c>com.microsoft.BiasGelu</c> (exact erf; <c>FastGelu</c> is the tanh approximation and is never used).
    /// </summary>
    public string BiasActivation(string x, float[] bias, string name)
    {
        string act = Config.HiddenAct;
        var b = B.Initializer(name + ".bias", bias, bias.Length);
        if (Fused && act == "gelu") return B.MsOp("BiasGelu", name, [x, b]);
        var y = B.Op("Add", name + ".Add", x, b);
        return act switch
        {
            "gelu" => Gelu(y, name),
            "relu" => B.Op("Relu", name, y),
            "silu" or "swish" => B.Op("Mul", name + ".Mul", y, B.Op("Sigmoid", name + ".Sigmoid", y)),
            "quick_gelu" => B.Op("Mul", name + ".Mul", y, B.Op("Sigmoid", name + ".Sigmoid", B.Op("Mul", name + ".Scale", y, B.Scalar(1.702f)))),
            "gelu_new" or "gelu_pytorch_tanh" => TanhGelu(y, name),
            _ => throw new NotSupportedException($"hidden_act '{act}' cannot be exported."),
        };
    }

    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    private string TanhGelu(string x, string name)
    {
        var x3 = B.Op("Mul", name + ".x3", B.Op("Mul", name + ".x2", x, x), x);
        var inner = B.Op("Add", name + ".Inner", x, B.Op("Mul", name + ".Cubic", x3, B.Scalar(0.044715f)));
        var t = B.Op("Tanh", name + ".Tanh", B.Op("Mul", name + ".Scale", inner, B.Scalar(MathF.Sqrt(2f / MathF.PI))));
        return B.Op("Mul", name + ".Half", B.Op("Mul", name + ".Mul", x, B.Op("Add", name + ".One", t, B.Scalar(1f))), B.Scalar(0.5f));
    }

    /// <summary>
    /// An eval-mode BatchNorm2d (<c>name.weight/bias/running_mean/running_var</c>, eps 1e-5) as a per-channel
    /// <c>(scale, shift)</c>, computed in double so folding it into a convolution loses nothing measurable.
    /// </summary>
    public (float[] Scale, float[] Shift) BatchNorm(string name, int channels)
    {
        var g = Weights.Get(name + ".weight", channels);
        var b = Weights.Get(name + ".bias", channels);
        var mean = Weights.Get(name + ".running_mean", channels);
        var variance = Weights.Get(name + ".running_var", channels);
        var scale = new float[channels];
        var shift = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            double s = g[c] / Math.Sqrt(variance[c] + 1e-5);
            scale[c] = (float)s;
            shift[c] = (float)(b[c] - mean[c] * s);
        }
        return (scale, shift);
    }

    /// <summary>Conv2d with given weight <c>[out, in, k, k]</c> and bias, stride 1, symmetric padding.</summary>
    public string Conv(string x, string name, float[] weight, float[] bias, int outChannels, int inChannels, int kernel, int padding) =>
        B.Op("Conv", name,
            [x, B.Initializer(name + ".weight", weight, outChannels, inChannels, kernel, kernel), B.Initializer(name + ".bias", bias, outChannels)],
            Ints("kernel_shape", kernel, kernel), Ints("pads", padding, padding, padding, padding), Ints("strides", 1, 1));

    /// <summary>
    /// Hugging Face's <c>BeitConvModule</c> (Conv2d without bias → BatchNorm2d → ReLU) with the BatchNorm folded into the
    /// convolution: <c>W' = W·s</c>, <c>b' = β − μ·s</c>.
    /// </summary>
    public string ConvModule(string x, string name, int inChannels, int outChannels, int kernel, int padding)
    {
        var w = Weights.Get(name + ".conv.weight", outChannels, inChannels, kernel, kernel);
        var (scale, shift) = BatchNorm(name + ".bn", outChannels);
        var folded = ScaleRows(w, scale);
        return B.Op("Relu", name + ".activation", Conv(x, name + ".conv", folded, shift, outChannels, inChannels, kernel, padding));
    }

    /// <summary>
    /// Bilinear resize of an NCHW tensor to <paramref name="height"/>×<paramref name="width"/> with PyTorch's
    /// <c>align_corners=False</c> (ONNX <c>pytorch_half_pixel</c>; ONNX Runtime clamps negative source coordinates like PyTorch).
    /// </summary>
    public string ResizeBilinear(string x, string name, int height, int width)
    {
        var batchChannels = B.Op("Shape", name + ".Shape", [x], Int("start", 0), Int("end", 2));
        var sizes = B.Op("Concat", name + ".Sizes", [batchChannels, B.Int64s(name + ".size", height, width)], Int("axis", 0));
        return B.Op("Resize", name, [x, "", "", sizes],
            Str("mode", "linear"), Str("coordinate_transformation_mode", "pytorch_half_pixel"));
    }

    /// <summary>The tensor's batch size as an int64 vector <c>[B]</c>.</summary>
    public string BatchSize(string x, string name) => B.Op("Shape", name, [x], Int("start", 0), Int("end", 1));

    /// <summary>Tokens <c>[:, 1:, :]</c> of a <c>[B, N+1, D]</c> sequence (drops CLS).</summary>
    public string PatchTokens(string x, string name) =>
        B.Op("Slice", name, x, B.Int64s(name + ".starts", 1), B.Int64s(name + ".ends", long.MaxValue), B.Int64s(name + ".axes", 1));

    /// <summary>Token 0 (CLS) of a <c>[B, N+1, D]</c> sequence as <c>[B, D]</c>.</summary>
    public string ClsToken(string x, string name) =>
        B.Op("Gather", name, [x, B.Initializer(name + ".index", new long[] { 0 })], Int("axis", 1));

    public static TensorProto.Types.DataType Float32 => TensorProto.Types.DataType.Float;
}
