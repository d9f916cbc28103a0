using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Onnx;

/// <summary>
/// Int8 and float16 exports of <c>cls_relpos</c> against Hugging Face's float32 logits, with tolerances from an error
/// analysis (<see cref="Int8LogitBound"/>, <see cref="Float16LogitBound"/>), and the graphs' content and refusals.
/// </summary>
public sealed class QuantizedExportTests(ITestOutputHelper output)
{
    private static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string fixture) => BeitCheckpoint.Load(Fixtures.Tiny(fixture));

    /// <summary>
    /// The bound on <c>max |int8 logit − float32 logit|</c>, from a rounding-error model:
    /// <list type="bullet">
    /// <item>Weights of output channel o are rounded to the step <c>sw = max|w|/127</c>, the input x of a projection (per
    /// tensor, uint8) to <c>sa = range(x)/255</c>. Rounding errors are independent and uniform on ±step/2, so their
    /// standard deviation is step/√12.</item>
    /// <item>For <c>y = x·w</c> over K inputs, the error <c>Σ δxᵢwᵢ + xᵢδwᵢ</c> has variance
    /// <c>(sa²/12)·Σwᵢ² + (sw²/12)·Σxᵢ²</c>, and the signal <c>E[y²] ≈ Σxᵢ²wᵢ² ≈ rms(x)²·Σwᵢ²</c>, so the relative error of one
    /// projection is <c>ρ = √((ra/255)² + (rw/127)²) / √12</c> with <c>rw = max|w|/rms(w)</c> (computed from the checkpoint,
    /// worst column) and <c>ra = range(x)/rms(x)</c>, taken as 16: activations within ±8 of their rms (LayerNorm outputs are
    /// bounded by √(D−1) ≈ 5.6 rms for D = 32 before the affine part).</item>
    /// <item>P projections (4 per layer and the classifier) add independent errors; LayerNorm is scale-invariant and the
    /// residual stream carries every branch to the logits with gain at most 1, so the logits' relative error is
    /// <c>ρ·√P</c>, and their largest deviation is bounded by four standard deviations: <c>4·ρ·√P·rms(logits)</c>.</item>
    /// </list>
    /// A wrong scale, a transposed weight or an unquantized input would be off by about rms(logits) or more, far above it.
    /// </summary>
    internal static double Int8LogitBound(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, float[] logits, bool reduceRange)
    {
        double qmax = reduceRange ? 63 : 127;
        double rw = 0;
        foreach (var (name, t) in tensors)
        {
            bool projection = name.EndsWith(".weight", StringComparison.Ordinal) && t.Shape.Length == 2
                && (name.Contains("attention.attention.", StringComparison.Ordinal) || name.Contains("dense", StringComparison.Ordinal) || name.StartsWith("classifier", StringComparison.Ordinal));
            if (!projection) continue;
            var w = t.ToFloatArray();
            int outF = (int)t.Shape[0], inF = (int)t.Shape[1];
            for (int o = 0; o < outF; o++)
            {
                double max = 0, sq = 0;
                for (int i = 0; i < inF; i++) { double v = w[o * inF + i]; max = Math.Max(max, Math.Abs(v)); sq += v * v; }
                if (sq > 0) rw = Math.Max(rw, max / Math.Sqrt(sq / inF));
            }
        }
        const double ra = 16;
        double rho = Math.Sqrt(Math.Pow(ra / 255, 2) + Math.Pow(rw / qmax, 2)) / Math.Sqrt(12);
        int projections = 4 * config.NumHiddenLayers + 1;
        return 4 * rho * Math.Sqrt(projections) * Rms(logits);
    }

    /// <summary>
    /// The bound on <c>max |float16 logit − float32 logit|</c>: float16 rounds to a relative step of 2⁻¹⁰ (unit roundoff
    /// u = 2⁻¹¹, uniform error of standard deviation u/√3). Each of the about 8 float16 values a layer rounds (weights, its
    /// input and outputs of the projections, attention and GELU) adds an independent relative error, so over L layers the
    /// logits' relative error is <c>(u/√3)·√(8L + 4)</c>; four standard deviations bound the largest deviation.
    /// </summary>
    internal static double Float16LogitBound(BeitConfig config, float[] logits) =>
        4 * Math.Pow(2, -11) / Math.Sqrt(3) * Math.Sqrt(8 * config.NumHiddenLayers + 4) * Rms(logits);

    private static double Rms(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x) / v.Length);

    private static float MaxAbs(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.False(float.IsNaN(a[i]), $"NaN at {i}");
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }
        return max;
    }

    private static void AssertSameTop1(float[] a, float[] b, int classes)
    {
        for (int row = 0; row < a.Length / classes; row++)
        {
            var ra = a.AsSpan(row * classes, classes).ToArray();
            var rb = b.AsSpan(row * classes, classes).ToArray();
            Assert.Equal(Array.IndexOf(rb, rb.Max()), Array.IndexOf(ra, ra.Max()));
        }
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused, nameof(BeitInt8MatMul.DynamicQuantizeMatMul), true, false)]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused, nameof(BeitInt8MatMul.DynamicQuantizeMatMul), false, false)]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused, nameof(BeitInt8MatMul.MatMulIntegerToFloat), true, false)]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused, nameof(BeitInt8MatMul.DynamicQuantizeMatMul), true, true)]
    [InlineData(BeitOnnxOperatorSet.Standard, nameof(BeitInt8MatMul.MatMulInteger), true, false)]
    public void Int8LogitsAreWithinTheQuantizationBoundOfHuggingFace(BeitOnnxOperatorSet set, string op, bool attentionOperator, bool reduceRange)
    {
        var io = Io("cls_relpos");
        var (config, tensors) = Load("cls_relpos");
        using var session = Session("cls_relpos", BeitOnnxTask.ImageClassification, set, new BeitOnnxExportOptions
        {
            Precision = BeitOnnxPrecision.Int8, Int8MatMul = Enum.Parse<BeitInt8MatMul>(op), AttentionOperator = attentionOperator, Int8ReduceRange = reduceRange,
        });
        Assert.Equal("Int8", session.Metadata[BeitOnnxNames.MetadataPrecision]);
        Assert.Equal(reduceRange ? "7" : "8", session.Metadata[BeitOnnxNames.MetadataInt8WeightBits]);
        var expected = io["logits"].ToFloatArray();
        var logits = session.Run(io["pixel_values"].ToFloatArray(), 2)["logits"].ToFloatArray();
        double bound = Int8LogitBound(config, tensors, expected, reduceRange);
        float diff = MaxAbs(logits, expected);
        output.WriteLine($"int8 ({set}, {op}, attention op {attentionOperator}, reduce range {reduceRange}): max |Δlogit| {diff:E3}, bound {bound:E3} (rms logits {Rms(expected):E3})");
        Assert.True(diff <= bound, $"max |Δlogit| {diff} exceeds the quantization bound {bound}");
        Assert.True(diff > 0, "the int8 graph computed exactly the float32 logits: its projections were not quantized");
        AssertSameTop1(logits, expected, config.NumLabels);
    }

    [Fact]
    public void Int8GraphStoresEveryProjectionAsInt8WithPerChannelScales()
    {
        var (config, tensors) = Load("cls_relpos");
        var fp32 = BeitOnnxExporter.BuildModel(config, tensors, BeitOnnxTask.ImageClassification, new BeitOnnxExportOptions());
        var int8 = BeitOnnxExporter.BuildModel(config, tensors, BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Int8, Int8ReduceRange = false });
        var quantized = int8.Graph.Initializer.Where(t => t.DataType == (int)TensorProto.Types.DataType.Int8).ToList();
        Assert.Equal(4 * config.NumHiddenLayers + 1, quantized.Count);
        Assert.Equal(4 * config.NumHiddenLayers + 1, int8.Graph.Node.Count(n => n.OpType == "DynamicQuantizeMatMul"));
        Assert.DoesNotContain(int8.Graph.Node, n => n.OpType is "MatMul" or "Gemm" or "Attention");
        // LayerNorm, GELU and the attention with its relative bias stay float.
        Assert.Equal(config.NumHiddenLayers, int8.Graph.Node.Count(n => n.OpType == "MultiHeadAttention"));
        Assert.Contains(int8.Graph.Node, n => n.OpType == "BiasGelu");
        Assert.Equal(1, fp32.Graph.Node.Count(n => n.OpType == "Gemm"));
        var scale = int8.Graph.Initializer.Single(t => t.Name == "classifier.weight_scale");
        Assert.Equal([config.NumLabels], scale.Dims);
        long fp32Bytes = fp32.Graph.Initializer.Sum(t => (long)t.RawData.Length), int8Bytes = int8.Graph.Initializer.Sum(t => (long)t.RawData.Length);
        output.WriteLine($"initializers: float32 {fp32Bytes} B, int8 {int8Bytes} B");
        Assert.True(int8Bytes < fp32Bytes);
    }

    [Theory]
    [InlineData(false, 127)]
    [InlineData(true, 63)]
    public void WeightsAreRoundedToHalfAStepPerOutputChannel(bool reduceRange, int qmax)
    {
        var rng = new Random(7);
        int inF = 24, outF = 5;
        var w = Enumerable.Range(0, inF * outF).Select(_ => (float)(rng.NextDouble() * 2 - 1) * 0.1f).ToArray();
        for (int i = 0; i < inF; i++) w[i * outF + 3] = 0; // an all-zero channel
        w[2 * outF + 1] = 5f;                                // one channel with a large weight keeps its own scale
        var (q, scales) = BeitExportContext.QuantizeWeights(w, inF, outF, reduceRange);
        Assert.Equal(1f, scales[3]);
        Assert.Equal(5f / qmax, scales[1], 6);
        for (int i = 0; i < inF; i++)
        {
            for (int o = 0; o < outF; o++)
            {
                int v = q[i * outF + o];
                Assert.InRange(v, -qmax, qmax);
                Assert.True(Math.Abs(v * scales[o] - w[i * outF + o]) <= scales[o] / 2 * (1 + 1e-5), $"w[{i},{o}]");
            }
        }
        Assert.Equal(qmax, q.Max(v => Math.Abs((int)v)));
    }

    [Fact]
    public void ReduceRangeOnlyAppliesToInt8()
    {
        Assert.Throws<NotSupportedException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { Int8ReduceRange = true }));
    }

    [Fact]
    public void Float16GraphMatchesFloat32WithinRoundingBoundOnTheCpuProviderWhenRunDirectly()
    {
        // The library refuses Float16 on the CPU (see below); ONNX Runtime itself can still run the graph here (it inserts
        // Casts around operators that have no float16 CPU kernel), which checks the graph's arithmetic.
        var io = Io("cls_relpos");
        var (config, _) = Load("cls_relpos");
        var bytes = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Float16 });
        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.DoesNotContain(model.Graph.Initializer, t => t.DataType == (int)TensorProto.Types.DataType.Float);
        Assert.Equal((int)TensorProto.Types.DataType.Float, model.Graph.Input.Single().Type.TensorType.ElemType);
        Assert.All(model.Graph.Output, o => Assert.Equal((int)TensorProto.Types.DataType.Float, o.Type.TensorType.ElemType));

        using var so = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(bytes, so);
        var pixels = io["pixel_values"];
        var input = new DenseTensor<float>(pixels.ToFloatArray(), pixels.Shape.Select(d => (int)d).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(BeitOnnxNames.PixelValues, input)]);
        var logits = results.Single(r => r.Name == BeitOnnxNames.Logits).AsEnumerable<float>().ToArray();
        var expected = io["logits"].ToFloatArray();
        double bound = Float16LogitBound(config, expected);
        float diff = MaxAbs(logits, expected);
        output.WriteLine($"float16 (CPU provider, run directly): max |Δlogit| {diff:E3}, bound {bound:E3}");
        Assert.True(diff <= bound, $"max |Δlogit| {diff} exceeds the float16 bound {bound}");
        AssertSameTop1(logits, expected, config.NumLabels);
    }

    [Fact]
    public void Float16IsRefusedOnTheCpuWithAClearMessage()
    {
        var bytes = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Float16 });
        var e = Assert.Throws<NotSupportedException>(() => new BeitOnnxSession(bytes));
        Assert.Contains("CUDA", e.Message);
        Assert.Contains("Int8", e.Message);
    }
}
