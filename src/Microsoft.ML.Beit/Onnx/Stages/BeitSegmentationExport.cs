using Microsoft.ML.Beit.Modeling;
using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Microsoft.ML.Beit.Onnx.Stages;

/// <summary>
/// <c>BeitForSemanticSegmentation</c> after the backbone (<c>modeling_beit.py</c>,
/// <c>BeitForSemanticSegmentation.forward</c>): the four feature maps, <c>fpn1..fpn4</c>, and
/// <c>BeitUperHead</c> (pyramid pooling with exact adaptive average pooling, lateral and FPN convolutions, classifier),
/// with every BatchNorm folded into the convolution before it. The auxiliary FCN head only feeds the training loss
/// and is not exported.
/// </summary>
internal static class BeitSegmentationExport
{
    /// <summary>The <c>hidden_states</c> indices the decode head reads: <c>idx</c> with <c>idx + 1 ∈ out_indices</c>.</summary>
    public static int[] Taps(BeitConfig config)
    {
        var outIndices = config.ResolvedOutIndices();
        if (outIndices.Length != 4)
            throw new NotSupportedException(
                $"Semantic segmentation needs exactly 4 out_indices (one per FPN stage); the configuration has [{string.Join(",", outIndices)}].");
        var taps = outIndices.Select(i => i - 1).ToArray();
        if (taps.Any(t => t < 0))
            throw new NotSupportedException($"out_indices [{string.Join(",", outIndices)}] must all be at least 1.");
        return taps;
    }

    /// <summary>Returns the logits <c>[B, C, 4·gh, 4·gw]</c> from the raw hidden states named by <see cref="Taps"/>.</summary>
    public static string Build(BeitExportContext ctx, IReadOnlyList<string> features)
    {
        var b = ctx.B;
        int d = ctx.Hidden, gh = ctx.GridHeight, gw = ctx.GridWidth;
        if (!ctx.Weights.Has("decode_head.classifier.weight") || !ctx.Weights.Has("fpn1.0.weight"))
            throw new InvalidDataException("The checkpoint has no segmentation head (fpn1.*, decode_head.*); it cannot be exported for semantic segmentation.");

        // Drop CLS and lay the tokens out as a [B, D, gh, gw] map (row-major grid).
        var mapShape = b.Int64s("fpn.map_shape", 0, d, gh, gw);
        var maps = new string[4];
        for (int i = 0; i < 4; i++)
        {
            var patches = ctx.PatchTokens(features[i], $"fpn.features.{i}.patches");
            var channelsFirst = b.Op("Transpose", $"fpn.features.{i}.transpose", [patches], Ints("perm", 0, 2, 1));
            maps[i] = b.Op("Reshape", $"fpn.features.{i}", channelsFirst, mapShape);
        }

        // fpn1 = ConvT → BatchNorm (folded) → GELU → ConvT: ×4. fpn2 = ConvT: ×2. fpn3 = identity. fpn4 = MaxPool: ×½.
        var (bnScale, bnShift) = ctx.BatchNorm("fpn1.1", d);
        var w0 = ctx.Weights.Get("fpn1.0.weight", d, d, 2, 2);
        var b0 = ctx.Weights.Get("fpn1.0.bias", d);
        var w0Folded = new float[w0.Length];
        for (int i = 0; i < w0.Length; i++) w0Folded[i] = w0[i] * bnScale[i / 4 % d];
        var b0Folded = b0.Select((v, c) => v * bnScale[c] + bnShift[c]).ToArray();
        var f1 = ConvTranspose(ctx, maps[0], "fpn1.0", w0Folded, b0Folded);
        f1 = ctx.Gelu(f1, "fpn1.2");
        f1 = ConvTranspose(ctx, f1, "fpn1.3", ctx.Weights.Get("fpn1.3.weight", d, d, 2, 2), ctx.Weights.Get("fpn1.3.bias", d));
        var f2 = ConvTranspose(ctx, maps[1], "fpn2.0", ctx.Weights.Get("fpn2.0.weight", d, d, 2, 2), ctx.Weights.Get("fpn2.0.bias", d));
        var f3 = maps[2];
        var f4 = b.Op("MaxPool", "fpn4", [maps[3]], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2));

        return UperHead(ctx, [f1, f2, f3, f4], [(4 * gh, 4 * gw), (2 * gh, 2 * gw), (gh, gw), (gh / 2, gw / 2)]);
    }

    private static string ConvTranspose(BeitExportContext ctx, string x, string name, float[] w, float[] bias)
    {
        var b = ctx.B;
        int d = ctx.Hidden;
        return b.Op("ConvTranspose", name,
            [x, b.Initializer(name + ".weight", w, d, d, 2, 2), b.Initializer(name + ".bias", bias, d)],
            Ints("kernel_shape", 2, 2), Ints("strides", 2, 2));
    }

    /// <summary><c>BeitUperHead</c> on the four maps of the given spatial sizes.</summary>
    private static string UperHead(BeitExportContext ctx, string[] f, (int H, int W)[] sizes)
    {
        var b = ctx.B;
        var c = ctx.Config;
        int ch = ctx.Hidden, labels = c.NumLabels;
        const string n = "decode_head";

        var laterals = new string[4];
        for (int i = 0; i < 3; i++) laterals[i] = ctx.ConvModule(f[i], $"{n}.lateral_convs.{i}", ch, ch, 1, 0);
        laterals[3] = PyramidPooling(ctx, f[3], sizes[3].H, sizes[3].W);

        for (int i = 3; i > 0; i--)
        {
            var up = ctx.ResizeBilinear(laterals[i], $"{n}.top_down.{i}.resize", sizes[i - 1].H, sizes[i - 1].W);
            laterals[i - 1] = b.Op("Add", $"{n}.top_down.{i}", laterals[i - 1], up);
        }

        var outs = new string[4];
        for (int i = 0; i < 3; i++) outs[i] = ctx.ConvModule(laterals[i], $"{n}.fpn_convs.{i}", ch, ch, 3, 1);
        outs[3] = laterals[3];
        for (int i = 1; i < 4; i++) outs[i] = ctx.ResizeBilinear(outs[i], $"{n}.fpn_outs.{i}.resize", sizes[0].H, sizes[0].W);
        var cat = b.Op("Concat", $"{n}.fpn_outs.concat", outs, Int("axis", 1));
        var fused = ctx.ConvModule(cat, $"{n}.fpn_bottleneck", 4 * ch, ch, 3, 1);
        var w = ctx.Weights.Get($"{n}.classifier.weight", labels, ch, 1, 1);
        var bias = ctx.Weights.Get($"{n}.classifier.bias", labels);
        return ctx.Conv(fused, $"{n}.classifier", w, bias, labels, ch, 1, 0);
    }

    /// <summary>
    /// <c>BeitPyramidPoolingModule</c> + <c>bottleneck</c>: every pool scale's exact adaptive average pooling is one
    /// precomputed matrix, all scales concatenated into a single MatMul over the flattened map.
    /// </summary>
    private static string PyramidPooling(BeitExportContext ctx, string x, int h, int w)
    {
        var b = ctx.B;
        var scales = ctx.Config.PoolScales;
        int ch = ctx.Hidden, area = h * w;
        const string n = "decode_head";
        int cells = scales.Sum(s => s * s);

        // [h·w, Σ s²]: column block per scale, each column averaging one bin.
        var pool = new float[area * cells];
        int col = 0;
        foreach (var s in scales)
        {
            var m = AdaptiveAvgPooling.Matrix(h, w, s, s);
            for (int cell = 0; cell < s * s; cell++, col++)
                for (int p = 0; p < area; p++)
                    pool[p * cells + col] = m[cell * area + p];
        }
        var flat = b.Op("Reshape", $"{n}.psp_modules.flatten", x, b.Int64s($"{n}.psp_modules.flat_shape", 0, ch, area));
        var pooled = b.Op("MatMul", $"{n}.psp_modules.pool", flat, b.Initializer($"{n}.psp_modules.pool_matrix", pool, area, cells));
        var pieces = b.Node("Split", $"{n}.psp_modules.split", [pooled, b.Int64s($"{n}.psp_modules.split_sizes", scales.Select(s => (long)s * s).ToArray())],
            scales.Length, "", Int("axis", 2));

        var branches = new List<string> { x };
        for (int i = 0; i < scales.Length; i++)
        {
            int s = scales[i];
            var grid = b.Op("Reshape", $"{n}.psp_modules.{i}.0", pieces[i], b.Int64s($"{n}.psp_modules.{i}.shape", 0, ch, s, s));
            var conv = ctx.ConvModule(grid, $"{n}.psp_modules.{i}.1", ch, ch, 1, 0);
            branches.Add(ctx.ResizeBilinear(conv, $"{n}.psp_modules.{i}.resize", h, w));
        }
        var cat = b.Op("Concat", $"{n}.psp_modules.concat", branches.ToArray(), Int("axis", 1));
        return ctx.ConvModule(cat, $"{n}.bottleneck", ch * (scales.Length + 1), ch, 3, 1);
    }
}
