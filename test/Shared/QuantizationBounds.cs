using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests;

/// <summary>Tolerances of quantized and float16 exports against float32, derived from rounding-error models.</summary>
internal static class QuantizationBounds
{
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
    public static double Int8LogitBound(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, float[] logits, bool reduceRange,
        bool classifier = true)
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
        // The classifier is the one head the int8 graph quantizes; features and the float heads add no projection.
        int projections = 4 * config.NumHiddenLayers + (classifier ? 1 : 0);
        return 4 * rho * Math.Sqrt(projections) * Rms(logits);
    }

    /// <summary>
    /// The bound on <c>max |float16 logit − float32 logit|</c>: float16 rounds to a relative step of 2⁻¹⁰ (unit roundoff
    /// u = 2⁻¹¹, uniform error of standard deviation u/√3). Each of the about 8 float16 values a layer rounds (weights, its
    /// input and outputs of the projections, attention and GELU) adds an independent relative error, so over L layers the
    /// logits' relative error is <c>(u/√3)·√(8L + 4)</c>; four standard deviations bound the largest deviation.
    /// </summary>
    public static double Float16LogitBound(BeitConfig config, float[] logits) =>
        4 * Math.Pow(2, -11) / Math.Sqrt(3) * Math.Sqrt(8 * config.NumHiddenLayers + 4) * Rms(logits);

    public static double Rms(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x) / v.Length);
}
