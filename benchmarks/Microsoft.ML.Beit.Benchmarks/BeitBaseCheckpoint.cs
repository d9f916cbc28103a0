using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Modeling;

namespace Beit.Benchmarks;

/// <summary>
/// A BEiT-base classifier (<c>microsoft/beit-base-patch16-224</c>'s shapes: 224×224, patch 16, 12 layers, D 768,
/// per-layer relative position bias, layer scale, mean pooling, 1000 labels) with seeded random weights made at run time.
/// </summary>
internal static class BeitBaseCheckpoint
{
    public static BeitConfig Config() => new()
    {
        ImageSize = 224,
        PatchSize = 16,
        HiddenSize = 768,
        NumHiddenLayers = 12,
        NumAttentionHeads = 12,
        IntermediateSize = 3072,
        UseRelativePositionBias = true,
        UseMeanPooling = true,
        LayerScaleInitValue = 0.1,
        NumLabels = 1000,
    };

    public static Dictionary<string, TensorData> Tensors(BeitConfig c, int seed = 1234)
    {
        var rng = new Random(seed);
        var t = new Dictionary<string, TensorData>();
        int d = c.HiddenSize, m = c.IntermediateSize, p = c.PatchSize;
        void Normal(string name, double std, params long[] shape) => t[name] = TensorData.FromFloats(Gaussian(rng, Count(shape), std), shape);
        void Const(string name, float value, params long[] shape) => t[name] = TensorData.FromFloats(Enumerable.Repeat(value, (int)Count(shape)).ToArray(), shape);
        void Around(string name, float center, double std, params long[] shape) =>
            t[name] = TensorData.FromFloats(Gaussian(rng, Count(shape), std).Select(v => v + center).ToArray(), shape);

        Normal("beit.embeddings.cls_token", 0.02, 1, 1, d);
        Normal("beit.embeddings.patch_embeddings.projection.weight", 0.02, d, c.NumChannels, p, p);
        Normal("beit.embeddings.patch_embeddings.projection.bias", 0.02, d);
        int rows = BeitGeometry.RelativeTableRows(c.GridSize, c.GridSize);
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string n = $"beit.encoder.layer.{l}.";
            Around(n + "layernorm_before.weight", 1, 0.02, d);
            Normal(n + "layernorm_before.bias", 0.02, d);
            Normal(n + "attention.attention.query.weight", 0.02, d, d);
            Normal(n + "attention.attention.query.bias", 0.02, d);
            Normal(n + "attention.attention.key.weight", 0.02, d, d);
            Normal(n + "attention.attention.value.weight", 0.02, d, d);
            Normal(n + "attention.attention.value.bias", 0.02, d);
            Normal(n + "attention.attention.relative_position_bias.relative_position_bias_table", 0.5, rows, c.NumAttentionHeads);
            Normal(n + "attention.output.dense.weight", 0.02, d, d);
            Normal(n + "attention.output.dense.bias", 0.02, d);
            Const(n + "lambda_1", (float)c.LayerScaleInitValue, d);
            Const(n + "lambda_2", (float)c.LayerScaleInitValue, d);
            Around(n + "layernorm_after.weight", 1, 0.02, d);
            Normal(n + "layernorm_after.bias", 0.02, d);
            Normal(n + "intermediate.dense.weight", 0.02, m, d);
            Normal(n + "intermediate.dense.bias", 0.02, m);
            Normal(n + "output.dense.weight", 0.02, d, m);
            Normal(n + "output.dense.bias", 0.02, d);
        }
        Around("beit.pooler.layernorm.weight", 1, 0.02, d);
        Normal("beit.pooler.layernorm.bias", 0.02, d);
        Normal("classifier.weight", 0.02, c.NumLabels, d);
        Normal("classifier.bias", 0.02, c.NumLabels);
        return t;
    }

    private static long Count(long[] shape) => shape.Aggregate(1L, (a, b) => a * b);

    private static float[] Gaussian(Random rng, long n, double std)
    {
        var r = new float[n];
        for (long i = 0; i < n; i += 2)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            double mag = std * Math.Sqrt(-2 * Math.Log(u1));
            r[i] = (float)(mag * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < n) r[i + 1] = (float)(mag * Math.Sin(2 * Math.PI * u2));
        }
        return r;
    }

    /// <summary>A random image batch, roughly in the normalised [-1, 1] range.</summary>
    public static float[] Pixels(int batch, int size, int seed = 7)
    {
        var rng = new Random(seed);
        var r = new float[batch * 3 * size * size];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        return r;
    }
}
