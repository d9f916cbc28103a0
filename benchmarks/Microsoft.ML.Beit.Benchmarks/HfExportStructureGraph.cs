using Google.Protobuf;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Modeling;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;
using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Beit.Benchmarks;

/// <summary>
/// The baseline: a BEiT classifier graph with the structure <c>torch.onnx.export</c> gives Hugging Face's model (read from
/// <c>test/fixtures/hf-beit/tiny/cls_relpos/model.onnx</c>, opset 17): separate Q/K/V MatMul+Add, scores scaled by a Mul
/// after Q·Kᵀ, relative bias added, layer-scale Mul after each output projection, the erf GELU pattern, opset-17
/// LayerNormalization. HF computes the relative bias with a shape-dependent subgraph that ONNX Runtime constant-folds at a
/// fixed resolution; here it is the same constant. The per-batch zero attention mask HF v5 also adds is left out, which
/// only flatters the baseline.
/// </summary>
internal static class HfExportStructureGraph
{
    public static byte[] Build(BeitConfig c, IReadOnlyDictionary<string, TensorData> tensors)
    {
        var b = new OnnxGraphBuilder();
        var w = new BeitCheckpointWeights(tensors);
        int d = c.HiddenSize, m = c.IntermediateSize, nh = c.NumAttentionHeads, dh = c.HeadDim, g = c.GridSize, t = g * g + 1, p = c.PatchSize;
        float eps = (float)c.LayerNormEps;

        string Init(string name, float[] v, params long[] dims) => b.Initializer(name, v, dims);
        string LayerNorm(string x, string name) => b.Op("LayerNormalization", name,
            [x, Init(name + ".weight", w.Get(name + ".weight", d), d), Init(name + ".bias", w.Get(name + ".bias", d), d)],
            Int("axis", -1), Float("epsilon", eps));
        string Linear(string x, string name, int outF, int inF, bool bias)
        {
            var y = b.Op("MatMul", name + "/MatMul", x, Init(name + ".weightT", BeitExportContext.Transpose(w.Get(name + ".weight", outF, inF), outF, inF), inF, outF));
            return bias ? b.Op("Add", name + "/Add", Init(name + ".bias", w.Get(name + ".bias", outF), outF), y) : y;
        }

        var pixels = b.Input("pixel_values", TensorProto.Types.DataType.Float, "batch", 3, c.ImageSize, c.ImageSize);
        var conv = b.Op("Conv", "patch_embeddings",
            [pixels, Init("proj.w", w.Get("beit.embeddings.patch_embeddings.projection.weight", d, 3, p, p), d, 3, p, p),
             Init("proj.b", w.Get("beit.embeddings.patch_embeddings.projection.bias", d), d)],
            Ints("kernel_shape", p, p), Ints("strides", p, p));
        var patches = b.Op("Transpose", "patches", [b.Op("Reshape", "flat", conv, b.Int64s("flat_shape", 0, d, -1))], Ints("perm", 0, 2, 1));
        var batch = b.Op("Shape", "batch", [pixels], Int("start", 0), Int("end", 1));
        var cls = b.Op("Expand", "cls", Init("cls_token", w.Get("beit.embeddings.cls_token", 1, 1, d), 1, 1, d),
            b.Op("Concat", "cls_shape", [batch, b.Int64s("cls_tail", 1, d)], Int("axis", 0)));
        var x = b.Op("Concat", "embeddings", [cls, patches], Int("axis", 1));

        var heads = b.Int64s("heads", 0, 0, nh, dh);
        var merged = b.Int64s("merged", 0, 0, d);
        var scale = b.Scalar((float)(1 / Math.Sqrt(dh)));
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string n = $"beit.encoder.layer.{l}.";
            var a = LayerNorm(x, n + "layernorm_before");
            var q = b.Op("Transpose", n + "q", [b.Op("Reshape", n + "q_r", Linear(a, n + "attention.attention.query", d, d, true), heads)], Ints("perm", 0, 2, 1, 3));
            var k = b.Op("Transpose", n + "k", [b.Op("Reshape", n + "k_r", Linear(a, n + "attention.attention.key", d, d, false), heads)], Ints("perm", 0, 2, 3, 1));
            var v = b.Op("Transpose", n + "v", [b.Op("Reshape", n + "v_r", Linear(a, n + "attention.attention.value", d, d, true), heads)], Ints("perm", 0, 2, 1, 3));
            var s = b.Op("Mul", n + "scale", b.Op("MatMul", n + "scores", q, k), scale);
            var table = w.Get(n + "attention.attention.relative_position_bias.relative_position_bias_table", BeitGeometry.RelativeTableRows(g, g), nh);
            s = b.Op("Add", n + "bias", s, Init(n + "relative_position_bias", RelativePositionBiasTable.Compute(table, nh, g, g, g), 1, nh, t, t));
            var probs = b.Op("Softmax", n + "softmax", [s], Int("axis", -1));
            var ctx = b.Op("Reshape", n + "merge", b.Op("Transpose", n + "ctx_t", [b.Op("MatMul", n + "ctx", probs, v)], Ints("perm", 0, 2, 1, 3)), merged);
            var o = b.Op("Mul", n + "lambda_1", Init(n + "lambda_1", w.Get(n + "lambda_1", d), d), Linear(ctx, n + "attention.output.dense", d, d, true));
            var x1 = b.Op("Add", n + "residual_1", o, x);
            var h = Linear(LayerNorm(x1, n + "layernorm_after"), n + "intermediate.dense", m, d, true);
            var gelu = b.Op("Mul", n + "gelu/Mul_1", b.Op("Mul", n + "gelu/Mul", h, b.Op("Add", n + "gelu/Add",
                b.Op("Erf", n + "gelu/Erf", b.Op("Div", n + "gelu/Div", h, b.Scalar(MathF.Sqrt(2f)))), b.Scalar(1f))), b.Scalar(0.5f));
            var mlp = b.Op("Mul", n + "lambda_2", Init(n + "lambda_2", w.Get(n + "lambda_2", d), d), Linear(gelu, n + "output.dense", d, m, true));
            x = b.Op("Add", n + "residual_2", mlp, x1);
        }
        var mean = b.Op("ReduceMean", "mean",
            [b.Op("Slice", "patch_tokens", x, b.Int64s("s0", 1), b.Int64s("s1", long.MaxValue), b.Int64s("s2", 1))], Ints("axes", 1), Int("keepdims", 0));
        var pooled = LayerNorm(mean, "beit.pooler.layernorm");
        var logits = b.Op("Gemm", "classifier",
            [pooled, Init("classifier.weight", w.Get("classifier.weight", c.NumLabels, d), c.NumLabels, d), Init("classifier.bias", w.Get("classifier.bias", c.NumLabels), c.NumLabels)],
            Int("transB", 1));
        b.Rename(logits, "logits");
        b.Output("logits", TensorProto.Types.DataType.Float, "batch", c.NumLabels);

        var model = new ModelProto { IrVersion = 8, ProducerName = "hf-structure-baseline", Graph = b.Graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }
}
