namespace Microsoft.ML.Beit.Modeling;

/// <summary>
/// PyTorch's <c>F.interpolate(mode="bilinear", align_corners=False)</c> (no antialias) in plain C#, so the exporter and
/// other code reproduce Hugging Face's resizes of relative position tables and logits exactly (spec Appendix A).
/// </summary>
public static class TorchInterpolation
{
    /// <summary>The two source taps and weights of one output index along one axis.</summary>
    /// <param name="Index0">First source index.</param>
    /// <param name="Index1">Second source index (equal to <paramref name="Index0"/> at the last input row).</param>
    /// <param name="Weight0">Weight of <paramref name="Index0"/>.</param>
    /// <param name="Weight1">Weight of <paramref name="Index1"/>.</param>
    public readonly record struct LinearTap(int Index0, int Index1, float Weight0, float Weight1);

    /// <summary>
    /// Taps of a linear resize from <paramref name="inSize"/> to <paramref name="outSize"/> samples with
    /// <c>align_corners=False</c>: source <c>s = (o + 0.5)·in/out − 0.5</c> clamped at 0, computed in float as PyTorch does.
    /// </summary>
    public static LinearTap[] LinearTaps(int inSize, int outSize)
    {
        if (inSize <= 0) throw new ArgumentOutOfRangeException(nameof(inSize), "Sizes must be positive.");
        if (outSize <= 0) throw new ArgumentOutOfRangeException(nameof(outSize), "Sizes must be positive.");
        var taps = new LinearTap[outSize];
        if (inSize == outSize)
        {
            for (int o = 0; o < outSize; o++) taps[o] = new LinearTap(o, o, 1f, 0f);
            return taps;
        }
        float scale = (float)inSize / outSize;
        for (int o = 0; o < outSize; o++)
        {
            float src = scale * (o + 0.5f) - 0.5f;
            if (src < 0) src = 0;
            int i0 = Math.Min((int)MathF.Floor(src), inSize - 1);
            float l1 = Math.Clamp(src - i0, 0f, 1f);
            int i1 = i0 < inSize - 1 ? i0 + 1 : i0;
            taps[o] = new LinearTap(i0, i1, 1f - l1, l1);
        }
        return taps;
    }

    /// <summary>
    /// Bilinearly resizes <paramref name="planes"/> row-major planes of <paramref name="inHeight"/>×<paramref name="inWidth"/>
    /// to <paramref name="outHeight"/>×<paramref name="outWidth"/> (<c>align_corners=False</c>), accumulating in PyTorch's order
    /// (width taps inside, height taps outside).
    /// </summary>
    /// <returns>A new array of <c>planes·outHeight·outWidth</c> values.</returns>
    public static float[] ResizeBilinear(ReadOnlySpan<float> source, int planes, int inHeight, int inWidth, int outHeight, int outWidth)
    {
        if (planes < 0) throw new ArgumentOutOfRangeException(nameof(planes));
        if (source.Length != checked(planes * inHeight * inWidth))
            throw new ArgumentException($"Expected {planes}×{inHeight}×{inWidth} values, got {source.Length}.", nameof(source));
        var ty = LinearTaps(inHeight, outHeight);
        var tx = LinearTaps(inWidth, outWidth);
        var result = new float[checked(planes * outHeight * outWidth)];
        for (int p = 0; p < planes; p++)
        {
            var src = source.Slice(p * inHeight * inWidth, inHeight * inWidth);
            var dst = result.AsSpan(p * outHeight * outWidth, outHeight * outWidth);
            for (int y = 0; y < outHeight; y++)
            {
                var (y0, y1, wy0, wy1) = ty[y];
                var row0 = src.Slice(y0 * inWidth, inWidth);
                var row1 = src.Slice(y1 * inWidth, inWidth);
                for (int x = 0; x < outWidth; x++)
                {
                    var (x0, x1, wx0, wx1) = tx[x];
                    float top = row0[x0] * wx0 + row0[x1] * wx1;
                    float bottom = row1[x0] * wx0 + row1[x1] * wx1;
                    dst[y * outWidth + x] = top * wy0 + bottom * wy1;
                }
            }
        }
        return result;
    }
}
