using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Microsoft.ML.Beit.Onnx.Stages;

/// <summary>
/// <c>BeitPooler</c>, the <c>BeitForImageClassification</c> classifier and the <c>BeitForMaskedImageModeling</c> head
/// (<c>modeling_beit.py</c>).
/// </summary>
internal static class BeitHeadsExport
{
    /// <summary>
    /// <c>BeitPooler</c>: LayerNorm of the mean patch token (mean pooling), else the CLS token of the normed sequence.
    /// A checkpoint without pooler weights gets the LayerNorm's initial values (weight 1, bias 0), as transformers does.
    /// </summary>
    public static string Pooler(BeitExportContext ctx, string sequence)
    {
        var b = ctx.B;
        int d = ctx.Hidden;
        const string n = "beit.pooler";
        if (!ctx.Config.UseMeanPooling) return ctx.ClsToken(sequence, n + ".cls");
        var mean = b.Op("ReduceMean", n + ".mean", [ctx.PatchTokens(sequence, n + ".patches")], Ints("axes", 1), Int("keepdims", 0));
        string wName = ctx.Weights.Backbone("pooler.layernorm.weight"), bName = ctx.Weights.Backbone("pooler.layernorm.bias");
        var gamma = ctx.Weights.TryGet(wName, d) ?? Enumerable.Repeat(1f, d).ToArray();
        var beta = ctx.Weights.TryGet(bName, d) ?? new float[d];
        return ctx.LayerNorm(mean, n + ".layernorm", gamma, beta);
    }

    /// <summary><c>classifier</c>: <c>logits = pooled·Wᵀ + b</c> (a Gemm, or an int8 projection) and their softmax.</summary>
    public static (string Logits, string Probabilities) Classifier(BeitExportContext ctx, string pooled)
    {
        var b = ctx.B;
        int d = ctx.Hidden, labels = ctx.Config.NumLabels;
        if (!ctx.Weights.Has("classifier.weight"))
            throw new InvalidDataException("The checkpoint has no classifier (classifier.weight); it cannot be exported for image classification. Export it as Features instead.");
        var w = ctx.Weights.Get("classifier.weight", labels, d);
        var bias = ctx.Weights.Get("classifier.bias", labels);
        var logits = ctx.Int8 != null
            ? ctx.Projection(pooled, "classifier", BeitExportContext.Transpose(w, labels, d), d, labels, bias)
            : b.Op("Gemm", "classifier",
                [pooled, b.Initializer("classifier.weight", w, labels, d), b.Initializer("classifier.bias", bias, labels)],
                Int("transB", 1));
        var probs = b.Op("Softmax", "classifier.softmax", [logits], Int("axis", -1));
        return (logits, probs);
    }

    /// <summary>
    /// <c>BeitForMaskedImageModeling</c>: top-level <c>layernorm</c> then <c>lm_head</c> on every patch token
    /// (<c>[B, N, vocab_size]</c>). <paramref name="sequence"/> is BeitModel's output (already through <c>beit.layernorm</c>
    /// when the model does not use mean pooling).
    /// </summary>
    public static string MaskedImageModeling(BeitExportContext ctx, string sequence)
    {
        var c = ctx.Config;
        int d = ctx.Hidden, v = c.VocabSize;
        if (!ctx.Weights.Has("lm_head.weight"))
            throw new InvalidDataException("The checkpoint has no masked-image-modeling head (lm_head.weight).");
        var patches = ctx.PatchTokens(sequence, "lm_head.patches");
        var (g, bt) = ctx.LayerNormWeights("layernorm", d);
        var normed = ctx.LayerNorm(patches, "layernorm", g, bt);
        var w = BeitExportContext.Transpose(ctx.Weights.Get("lm_head.weight", v, d), v, d);
        return ctx.Linear(normed, "lm_head", w, d, v, ctx.Weights.Get("lm_head.bias", v));
    }
}
