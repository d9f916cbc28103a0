using Microsoft.ML.Beit.Modeling;
using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Microsoft.ML.Beit.Onnx.Stages;

/// <summary>
/// <c>BeitEmbeddings</c>: patch projection (Conv k=P, s=P), optional mask-token replacement, CLS prepended, optional
/// absolute position embeddings, resized bicubically when the export resolution differs from the checkpoint's.
/// </summary>
internal static class BeitEmbeddingsExport
{
    /// <summary>Returns the embedding output <c>[B, N+1, D]</c> (<c>hidden_states[0]</c>).</summary>
    public static string Build(BeitExportContext ctx, string pixelValues, string? boolMaskedPos)
    {
        var c = ctx.Config;
        var b = ctx.B;
        int d = ctx.Hidden, p = c.PatchSize;
        const string name = "beit.embeddings";

        // patch_embeddings.projection: [B,3,H,W] → [B,D,gh,gw] → [B,D,N] → [B,N,D] (row-major over the grid).
        var projW = ctx.Weights.Get(ctx.Weights.Backbone("embeddings.patch_embeddings.projection.weight"), d, c.NumChannels, p, p);
        var projB = ctx.Weights.Get(ctx.Weights.Backbone("embeddings.patch_embeddings.projection.bias"), d);
        var conv = b.Op("Conv", name + ".patch_embeddings.projection",
            [pixelValues,
             b.Initializer(name + ".patch_embeddings.projection.weight", projW, d, c.NumChannels, p, p),
             b.Initializer(name + ".patch_embeddings.projection.bias", projB, d)],
            Ints("kernel_shape", p, p), Ints("strides", p, p), Ints("pads", 0, 0, 0, 0));
        var flat = b.Op("Reshape", name + ".patch_embeddings.flatten", conv, b.Int64s(name + ".patch_embeddings.flat_shape", 0, d, -1));
        var patches = b.Op("Transpose", name + ".patch_embeddings.transpose", [flat], Ints("perm", 0, 2, 1));

        if (boolMaskedPos != null)
        {
            // e ← e·(1−w) + mask_token·w is a pure replacement for finite embeddings: Where selects the same values.
            var maskToken = ctx.Weights.Get(ctx.Weights.Backbone("embeddings.mask_token"), 1, 1, d);
            var mask = b.Op("Unsqueeze", name + ".mask.unsqueeze", boolMaskedPos, b.Int64s(name + ".mask.axes", 2));
            patches = b.Op("Where", name + ".mask_token", mask, b.Initializer(name + ".mask_token", maskToken, 1, 1, d), patches);
        }

        var cls = ctx.Weights.Get(ctx.Weights.Backbone("embeddings.cls_token"), 1, 1, d);
        var batch = ctx.BatchSize(pixelValues, name + ".batch");
        var clsShape = b.Op("Concat", name + ".cls_shape", [batch, b.Int64s(name + ".cls_tail", 1, d)], Int("axis", 0));
        var clsTokens = b.Op("Expand", name + ".cls_token", b.Initializer(name + ".cls_token", cls, 1, 1, d), clsShape);
        var tokens = b.Op("Concat", name + ".concat", [clsTokens, patches], Int("axis", 1));

        if (c.UseAbsolutePositionEmbeddings)
        {
            // The resolution is fixed at export, so the bicubically resized table is a constant.
            int n0 = c.GridSize * c.GridSize, n = ctx.NumPatches;
            var pos = BeitGeometry.InterpolatePositionEmbeddings(
                ctx.Weights.Get(ctx.Weights.Backbone("embeddings.position_embeddings"), 1, n0 + 1, d), d, ctx.GridHeight, ctx.GridWidth);
            tokens = b.Op("Add", name + ".position_embeddings", tokens, b.Initializer(name + ".position_embeddings", pos, 1, n + 1, d));
        }
        return tokens;
    }
}
