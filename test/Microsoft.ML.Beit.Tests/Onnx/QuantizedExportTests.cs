using Microsoft.ML;
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
/// analysis (<see cref="QuantizationBounds"/>), and the graphs' content and refusals.
/// </summary>
public sealed class QuantizedExportTests(ITestOutputHelper output)
{
    private static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string fixture) => BeitCheckpoint.Load(Fixtures.Tiny(fixture));

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
        double bound = QuantizationBounds.Int8LogitBound(config, tensors, expected, reduceRange);
        float diff = TestMath.MaxAbsDiff(logits, expected);
        output.WriteLine($"int8 ({set}, {op}, attention op {attentionOperator}, reduce range {reduceRange}): max |Δlogit| {diff:E3}, bound {bound:E3} (rms logits {QuantizationBounds.Rms(expected):E3})");
        Assert.True(diff <= bound, $"max |Δlogit| {diff} exceeds the quantization bound {bound}");
        Assert.True(diff > 0, "the int8 graph computed exactly the float32 logits: its projections were not quantized");
        AssertSameTop1(logits, expected, config.NumLabels);
    }

    [Theory]
    [InlineData("cls_relpos", BeitOnnxTask.Features, "last_hidden_state", "hidden_states.4")]
    [InlineData("mim_shared", BeitOnnxTask.MaskedImageModeling, "logits", "logits")]
    public void Int8EncoderOfTheOtherTasksIsWithinTheQuantizationBound(string fixture, BeitOnnxTask task, string outputName, string reference)
    {
        // The encoder's projections are int8 for every task; the heads other than the classifier stay float.
        var io = Io(fixture);
        var (config, tensors) = Load(fixture);
        using var session = Session(fixture, task, BeitOnnxOperatorSet.OnnxRuntimeFused,
            new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Int8, Int8ReduceRange = false });
        var r = task == BeitOnnxTask.MaskedImageModeling
            ? session.Run(io["pixel_values"].ToFloatArray(), 2, io["bool_masked_pos"].ToBoolArray())
            : session.Run(io["pixel_values"].ToFloatArray(), 2);
        var expected = io[reference].ToFloatArray();
        var actual = r[outputName].ToFloatArray();
        double bound = QuantizationBounds.Int8LogitBound(config, tensors, expected, reduceRange: false, classifier: false);
        float diff = TestMath.MaxAbsDiff(actual, expected);
        output.WriteLine($"int8 {fixture} {outputName}: max |Δ| {diff:E3}, bound {bound:E3}");
        Assert.True(diff > 0 && diff <= bound, $"max |Δ| {diff}, bound {bound}");
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

        // The relative bias is stored as tables + index; ONNX Runtime folds the Gather → Transpose → Reshape at load.
        Assert.Equal(config.NumHiddenLayers, int8.Graph.Node.Count(n => n.OpType == "Gather" && n.Name.Contains("relative_position_bias", StringComparison.Ordinal)));
        using var dir = new TempDir();
        string optimized = Path.Combine(dir, "optimized.onnx");
        using (new BeitOnnxSession(Google.Protobuf.MessageExtensions.ToByteArray(int8), new BeitOnnxSessionOptions { OptimizedModelFilePath = optimized })) { }
        var folded = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph;
        Assert.DoesNotContain(folded.Node, n => n.Name.Contains("relative_position_bias", StringComparison.Ordinal));
        Assert.Equal(config.NumHiddenLayers, folded.Node.Count(n => n.OpType == "MultiHeadAttention"));
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
        double bound = QuantizationBounds.Float16LogitBound(config, expected);
        float diff = TestMath.MaxAbsDiff(logits, expected);
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

    [Fact]
    public void ClassifierStageExportsInt8FromACheckpointAndRefusesFloat16OnTheCpu()
    {
        var ml = new Microsoft.ML.MLContext(seed: 0);
        var io = Io("cls_relpos");
        var (config, tensors) = Load("cls_relpos");
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 2)
            .Select(i => new Beit.Tests.Estimators.PixelRow { PixelValues = Beit.Tests.Estimators.PipelineData.Item(io["pixel_values"], i) }).ToArray());
        var options = new Microsoft.ML.Beit.Estimators.BeitClassifierEstimator.Options
        {
            Model = Microsoft.ML.Beit.Estimators.BeitModelSource.FromPath(Fixtures.Tiny("cls_relpos")),
            LogitsColumnName = "Logits",
            ExportOptions = new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Int8 },
        };
        var estimator = ml.Transforms.BeitClassifier(options);
        Assert.Contains(ModelProto.Parser.ParseFrom(estimator.OnnxModel).Graph.Initializer, t => t.DataType == (int)TensorProto.Types.DataType.Int8);
        using var classifier = estimator.Fit(data);
        var logits = Beit.Tests.Estimators.PipelineData.Floats(classifier.Transform(data), "Logits").SelectMany(v => v).ToArray();
        var expected = io["logits"].ToFloatArray();
        double bound = QuantizationBounds.Int8LogitBound(config, tensors, expected, reduceRange: !CpuFeatures.Current.HasInt8DotProduct);
        float diff = TestMath.MaxAbsDiff(logits, expected);
        output.WriteLine($"int8 classifier stage: max |Δlogit| {diff:E3}, bound {bound:E3}");
        Assert.True(diff > 0 && diff <= bound, $"max |Δlogit| {diff}, bound {bound}");

        options.ExportOptions = new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Float16 };
        var e = Assert.Throws<NotSupportedException>(() => ml.Transforms.BeitClassifier(options));
        Assert.Contains("GpuDeviceId", e.Message);
    }
}
