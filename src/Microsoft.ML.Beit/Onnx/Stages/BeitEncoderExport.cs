using Microsoft.ML.Beit.Modeling;
using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Microsoft.ML.Beit.Onnx.Stages;

/// <summary>
/// <c>BeitEncoder</c> / <c>BeitLayer</c> (pre-LN transformer with relative position bias and layer scale; <c>modeling_beit.py</c>,
/// <c>BeitSelfAttention</c>),
/// with the algebra done at export time: <c>1/√dh</c> folded into the query projection, Q/K/V concatenated into one
/// projection (zero key bias), layer-scale lambdas folded into the output projections, and the relative position bias
/// precomputed per layer as a constant <c>[1, nH, N+1, N+1]</c>.
/// </summary>
internal static class BeitEncoderExport
{
    /// <summary>What the encoder produced.</summary>
    /// <param name="Hidden">
    /// <c>hidden_states[k]</c> (k = 0 embeddings, k = layers applied) for each requested tap, else null.
    /// </param>
    /// <param name="FinalNormed">The last hidden state after the requested final LayerNorm, else null.</param>
    public sealed record Result(string?[] Hidden, string? FinalNormed);

    /// <summary>
    /// Runs the first <paramref name="layers"/> layers on <paramref name="embeddings"/>. <paramref name="taps"/> lists the
    /// <c>hidden_states</c> indices the caller needs raw; <paramref name="finalNorm"/>, if given, is a LayerNorm applied to
    /// the last hidden state (fused into the last residual add with the ONNX Runtime operator set).
    /// </summary>
    public static Result Build(BeitExportContext ctx, string embeddings, int layers, ISet<int> taps, (float[] Gamma, float[] Beta)? finalNorm)
    {
        var hidden = new string?[layers + 1];
        hidden[0] = embeddings;
        var sharedBias = SharedBias(ctx);
        return ctx.Fused
            ? BuildFused(ctx, embeddings, layers, taps, finalNorm, hidden, sharedBias)
            : BuildStandard(ctx, embeddings, layers, finalNorm, hidden, sharedBias);
    }

    private sealed record LayerWeights(
        float[] LnBeforeG, float[] LnBeforeB, float[] QkvInOut, float[] QkvBias, float[] OutInOut, float[] OutBias,
        float[] LnAfterG, float[] LnAfterB, float[] FcInOut, float[] FcBias, float[] Fc2InOut, float[] Fc2Bias, float[]? Bias);

    private static string Prefix(BeitExportContext ctx, int l) => ctx.Weights.Backbone($"encoder.layer.{l}.");

    private static LayerWeights Load(BeitExportContext ctx, int l)
    {
        var w = ctx.Weights;
        var c = ctx.Config;
        int d = c.HiddenSize, m = c.IntermediateSize;
        string p = Prefix(ctx, l);
        float scale = (float)(1.0 / Math.Sqrt(c.HeadDim));

        var wq = w.Get(p + "attention.attention.query.weight", d, d);
        var bq = w.Get(p + "attention.attention.query.bias", d);
        var wk = w.Get(p + "attention.attention.key.weight", d, d);
        var wv = w.Get(p + "attention.attention.value.weight", d, d);
        var bv = w.Get(p + "attention.attention.value.bias", d);
        // [in, 3·out] = [Wq·scale | Wk | Wv]ᵀ; key has no bias in BEiT.
        var qkv = new float[d * 3 * d];
        for (int o = 0; o < d; o++)
        {
            for (int i = 0; i < d; i++)
            {
                qkv[i * 3 * d + o] = wq[o * d + i] * scale;
                qkv[i * 3 * d + d + o] = wk[o * d + i];
                qkv[i * 3 * d + 2 * d + o] = wv[o * d + i];
            }
        }
        var qkvBias = new float[3 * d];
        for (int o = 0; o < d; o++)
        {
            qkvBias[o] = bq[o] * scale;
            qkvBias[2 * d + o] = bv[o];
        }

        // Layer scale: λ ⊙ (x·Wᵀ + b) = x·(λ⊙W)ᵀ + λ⊙b.
        var lambda1 = w.TryGet(p + "lambda_1", d);
        var lambda2 = w.TryGet(p + "lambda_2", d);
        var wo = w.Get(p + "attention.output.dense.weight", d, d);
        var bo = w.Get(p + "attention.output.dense.bias", d);
        var w2 = w.Get(p + "output.dense.weight", d, m);
        var b2 = w.Get(p + "output.dense.bias", d);
        if (lambda1 != null) { wo = BeitExportContext.ScaleRows(wo, lambda1); bo = BeitExportContext.Mul(bo, lambda1); }
        if (lambda2 != null) { w2 = BeitExportContext.ScaleRows(w2, lambda2); b2 = BeitExportContext.Mul(b2, lambda2); }

        float[]? bias = null;
        if (ctx.Config.UseRelativePositionBias)
        {
            var table = w.Get(p + "attention.attention.relative_position_bias.relative_position_bias_table",
                BeitGeometry.RelativeTableRows(c.GridSize, c.GridSize), c.NumAttentionHeads);
            bias = SizedTable(ctx, table);
        }

        return new LayerWeights(
            w.Get(p + "layernorm_before.weight", d), w.Get(p + "layernorm_before.bias", d),
            qkv, qkvBias, BeitExportContext.Transpose(wo, d, d), bo,
            w.Get(p + "layernorm_after.weight", d), w.Get(p + "layernorm_after.bias", d),
            BeitExportContext.Transpose(w.Get(p + "intermediate.dense.weight", m, d), m, d), w.Get(p + "intermediate.dense.bias", m),
            BeitExportContext.Transpose(w2, d, m), b2, bias);
    }

    private static float[]? SharedBias(BeitExportContext ctx)
    {
        var c = ctx.Config;
        if (!c.UseSharedRelativePositionBias) return null;
        var table = ctx.Weights.Get(ctx.Weights.Backbone("encoder.relative_position_bias.relative_position_bias_table"),
            BeitGeometry.RelativeTableRows(c.GridSize, c.GridSize), c.NumAttentionHeads);
        return SizedTable(ctx, table);
    }

    /// <summary>A checkpoint's relative position table <c>[M, nH]</c> resized (if needed) for the exported patch grid.</summary>
    private static float[] SizedTable(BeitExportContext ctx, float[] table) =>
        RelativePositionBiasTable.InterpolateTable(table, ctx.Config.NumAttentionHeads, ctx.Config.GridSize, ctx.Config.GridSize, ctx.GridHeight, ctx.GridWidth);

    /// <summary>
    /// The layer's attention bias <c>[1, nH, N+1, N+1]</c> (per-layer + shared, summed), or null when the model has none.
    /// Float graphs store it dense. Int8 graphs, whose weights shrink 4×, would otherwise be a fifth dense bias for BEiT-base
    /// (12 × 1.9 MB): they store each table <c>[M, nH]</c> and the relative position index, and Gather → Transpose →
    /// Reshape, which ONNX Runtime's constant folding turns back into the dense bias when the session is created, so
    /// nothing of it runs per image.
    /// </summary>
    private static string? AttentionBias(BeitExportContext ctx, int l, float[]? layerTable, float[]? sharedTable, ref string? sharedName)
    {
        int h = ctx.Config.NumAttentionHeads, t = ctx.Tokens;
        if (layerTable == null && sharedTable == null) return null;
        if (layerTable == null)
            return sharedName ??= Bias(ctx, "beit.encoder.relative_position_bias", sharedTable!);
        var total = sharedTable == null ? layerTable : layerTable.Select((v, i) => v + sharedTable[i]).ToArray();
        return Bias(ctx, $"beit.encoder.layer.{l}.attention.attention.relative_position_bias", total);

        string Bias(BeitExportContext ctx, string name, float[] table)
        {
            if (ctx.Int8 == null)
                return ctx.B.Initializer(name, RelativePositionBiasTable.Gather(table, h, ctx.GridHeight, ctx.GridWidth), 1, h, t, t);
            var b = ctx.B;
            var index = ctx.Shared("beit.encoder.relative_position_index", () =>
                b.Initializer("beit.encoder.relative_position_index", BeitGeometry.RelativePositionIndex(ctx.GridHeight, ctx.GridWidth), (long)t * t));
            var shape = ctx.Shared("beit.encoder.bias_shape", () => b.Int64s("beit.encoder.bias_shape", 1, h, t, t));
            var rows = b.Op("Gather", name + ".gather", [b.Initializer(name + "_table", table, table.Length / h, h), index], Int("axis", 0));
            return b.Op("Reshape", name, b.Op("Transpose", name + ".transpose", [rows], Ints("perm", 1, 0)), shape);
        }
    }

    // ---- ONNX Runtime fused operators ---------------------------------------------------------------------------

    private static Result BuildFused(BeitExportContext ctx, string embeddings, int layers, ISet<int> taps,
        (float[] Gamma, float[] Beta)? finalNorm, string?[] hidden, float[]? shared)
    {
        var b = ctx.B;
        int d = ctx.Hidden, m = ctx.Config.IntermediateSize, heads = ctx.Config.NumAttentionHeads;
        float eps = (float)ctx.Config.LayerNormEps;
        string? sharedName = null;
        if (layers == 0)
            return new Result(hidden, finalNorm is { } f0 ? ctx.LayerNorm(embeddings, "beit.layernorm", f0.Gamma, f0.Beta) : null);

        var first = Load(ctx, 0);
        string? residual = embeddings;
        string normed = ctx.LayerNorm(embeddings, "beit.encoder.layer.0.layernorm_before", first.LnBeforeG, first.LnBeforeB);
        string? finalNormed = null;
        var lw = first;
        for (int l = 0; l < layers; l++)
        {
            string n = $"beit.encoder.layer.{l}";
            var bias = AttentionBias(ctx, l, lw.Bias, shared, ref sharedName);
            string context;
            if (ctx.UseAttentionOperator && ctx.Int8 != null)
            {
                // com.microsoft.Attention takes float weights only (QAttention has no attention-bias input), so the int8
                // QKV projection runs first and MultiHeadAttention, which takes the relative bias, does the rest.
                var qkv = ctx.Projection(normed, n + ".attention.attention.qkv", lw.QkvInOut, d, 3 * d, lw.QkvBias);
                var split = ctx.Shared("beit.encoder.qkv_split", () => b.Int64s("beit.encoder.qkv_split", d, d, d));
                var parts = b.Node("Split", n + ".attention.attention.split", [qkv, split], 3, "", Int("axis", -1));
                var mhaInputs = new List<string> { parts[0], parts[1], parts[2] };
                if (bias != null) mhaInputs.AddRange(["", "", bias]);
                context = b.MsOp("MultiHeadAttention", n + ".attention.attention", mhaInputs.ToArray(),
                    Int("num_heads", heads), Float("scale", 1f));
            }
            else if (ctx.UseAttentionOperator)
            {
                var attnInputs = new List<string>
                {
                    normed,
                    b.Initializer(n + ".attention.attention.qkv.weight", lw.QkvInOut, d, 3 * d),
                    b.Initializer(n + ".attention.attention.qkv.bias", lw.QkvBias, 3 * d),
                };
                if (bias != null) attnInputs.AddRange(["", "", bias]);
                // The query already carries 1/√dh, so the operator must not scale again.
                context = b.MsOp("Attention", n + ".attention.attention", attnInputs.ToArray(),
                    Int("num_heads", heads), Float("scale", 1f));
            }
            else
            {
                context = SelfAttention(ctx, normed, n, lw, bias);
            }
            var attnOut = ctx.Projection(context, n + ".attention.output.dense", lw.OutInOut, d, d, null);
            // SkipLayerNormalization: x1 = x + attn + bo (output 3) and layernorm_after(x1) (output 0) in one pass.
            var skip1 = b.Node("SkipLayerNormalization", n + ".layernorm_after",
                [attnOut, residual!, b.Initializer(n + ".layernorm_after.weight", lw.LnAfterG, d),
                 b.Initializer(n + ".layernorm_after.bias", lw.LnAfterB, d), b.Initializer(n + ".attention.output.dense.bias", lw.OutBias, d)],
                [true, false, false, true], OnnxGraphBuilder.MicrosoftDomain, Float("epsilon", eps));
            string x1 = skip1[3]!;
            var fc = ctx.Projection(skip1[0]!, n + ".intermediate.dense", lw.FcInOut, d, m, null);
            var act = ctx.BiasActivation(fc, lw.FcBias, n + ".intermediate.intermediate_act_fn");
            var mlp = ctx.Projection(act, n + ".output.dense", lw.Fc2InOut, m, d, null);
            var outBias = b.Initializer(n + ".output.dense.bias", lw.Fc2Bias, d);

            bool lastLayer = l == layers - 1;
            bool wantRaw = taps.Contains(l + 1);
            (float[] G, float[] B, string Name)? nextNorm = null;
            LayerWeights? next = null;
            if (!lastLayer)
            {
                next = Load(ctx, l + 1);
                nextNorm = (next.LnBeforeG, next.LnBeforeB, $"beit.encoder.layer.{l + 1}.layernorm_before");
            }
            else if (finalNorm is { } f)
            {
                nextNorm = (f.Gamma, f.Beta, "beit.layernorm");
            }

            if (nextNorm is { } nn)
            {
                // y = x1 + mlp + b2 (output 3) and the next LayerNorm of y (output 0).
                var skip2 = b.Node("SkipLayerNormalization", nn.Name,
                    [mlp, x1, b.Initializer(nn.Name + ".weight", nn.G, d), b.Initializer(nn.Name + ".bias", nn.B, d), outBias],
                    [true, false, false, wantRaw || !lastLayer], OnnxGraphBuilder.MicrosoftDomain, Float("epsilon", eps));
                normed = skip2[0]!;
                residual = skip2[3]; // null only after the last layer when nobody needs the raw state
                if (lastLayer) finalNormed = normed;
            }
            else
            {
                residual = b.Op("Add", n + ".output.residual", b.Op("Add", n + ".output.dense.Add", mlp, outBias), x1);
            }
            hidden[l + 1] = residual;
            lw = next!;
        }
        return new Result(hidden, finalNormed);
    }

    // ---- standard ONNX operators --------------------------------------------------------------------------------

    /// <summary>
    /// <c>BeitSelfAttention</c> in standard operators: one Q/K/V projection, split, heads to <c>[B, nH, T, dh]</c>
    /// (K directly as <c>[B, nH, dh, T]</c>), scores + bias, softmax, context merged back to <c>[B, T, D]</c>.
    /// </summary>
    private static string SelfAttention(BeitExportContext ctx, string x, string n, LayerWeights lw, string? bias)
    {
        var b = ctx.B;
        int d = ctx.Hidden, heads = ctx.Config.NumAttentionHeads, dh = ctx.Config.HeadDim;
        var headShape = ctx.Shared("beit.encoder.head_shape", () => b.Int64s("beit.encoder.head_shape", 0, 0, heads, dh));
        var mergedShape = ctx.Shared("beit.encoder.merged_shape", () => b.Int64s("beit.encoder.merged_shape", 0, 0, d));
        var split = ctx.Shared("beit.encoder.qkv_split", () => b.Int64s("beit.encoder.qkv_split", d, d, d));
        var qkv = ctx.Projection(x, n + ".attention.attention.qkv", lw.QkvInOut, d, 3 * d, lw.QkvBias);
        var parts = b.Node("Split", n + ".attention.attention.split", [qkv, split], 3, "", Int("axis", -1));
        var q = b.Op("Transpose", n + ".attention.attention.query.heads",
            [b.Op("Reshape", n + ".attention.attention.query.reshape", parts[0], headShape)], Ints("perm", 0, 2, 1, 3));
        var kT = b.Op("Transpose", n + ".attention.attention.key.heads",
            [b.Op("Reshape", n + ".attention.attention.key.reshape", parts[1], headShape)], Ints("perm", 0, 2, 3, 1));
        var v = b.Op("Transpose", n + ".attention.attention.value.heads",
            [b.Op("Reshape", n + ".attention.attention.value.reshape", parts[2], headShape)], Ints("perm", 0, 2, 1, 3));
        var scores = b.Op("MatMul", n + ".attention.attention.scores", q, kT);
        if (bias != null) scores = b.Op("Add", n + ".attention.attention.relative_position_bias.Add", scores, bias);
        var probs = b.Op("Softmax", n + ".attention.attention.softmax", [scores], Int("axis", -1));
        var ctxHeads = b.Op("MatMul", n + ".attention.attention.context", probs, v);
        return b.Op("Reshape", n + ".attention.attention.merge",
            b.Op("Transpose", n + ".attention.attention.context.transpose", [ctxHeads], Ints("perm", 0, 2, 1, 3)), mergedShape);
    }

    private static Result BuildStandard(BeitExportContext ctx, string embeddings, int layers,
        (float[] Gamma, float[] Beta)? finalNorm, string?[] hidden, float[]? shared)
    {
        var b = ctx.B;
        int d = ctx.Hidden, m = ctx.Config.IntermediateSize;
        string? sharedName = null;
        string x = embeddings;
        for (int l = 0; l < layers; l++)
        {
            string n = $"beit.encoder.layer.{l}";
            var lw = Load(ctx, l);
            var a = ctx.LayerNorm(x, n + ".layernorm_before", lw.LnBeforeG, lw.LnBeforeB);

            var merged = SelfAttention(ctx, a, n, lw, AttentionBias(ctx, l, lw.Bias, shared, ref sharedName));
            var attnOut = ctx.Projection(merged, n + ".attention.output.dense", lw.OutInOut, d, d, lw.OutBias);
            var x1 = b.Op("Add", n + ".attention.residual", attnOut, x);

            var a2 = ctx.LayerNorm(x1, n + ".layernorm_after", lw.LnAfterG, lw.LnAfterB);
            var fc = ctx.Projection(a2, n + ".intermediate.dense", lw.FcInOut, d, m, null);
            var act = ctx.BiasActivation(fc, lw.FcBias, n + ".intermediate.intermediate_act_fn");
            var mlp = ctx.Projection(act, n + ".output.dense", lw.Fc2InOut, m, d, lw.Fc2Bias);
            x = b.Op("Add", n + ".output.residual", mlp, x1);
            hidden[l + 1] = x;
        }
        string? finalNormed = finalNorm is { } f ? ctx.LayerNorm(x, "beit.layernorm", f.Gamma, f.Beta) : null;
        return new Result(hidden, finalNormed);
    }
}
