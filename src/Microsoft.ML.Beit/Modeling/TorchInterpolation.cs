namespace Microsoft.ML.Beit.Modeling;

/// <summary>
/// PyTorch's <c>F.interpolate(mode="bilinear" | "bicubic", align_corners=False)</c> (no antialias) in plain C#, so the
/// exporter and other code reproduce Hugging Face's resizes of relative position tables, absolute position embeddings
/// and logits exactly.
/// </summary>
internal static class TorchInterpolation
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
        var ty = LinearTaps(inHeight, outHeight);
        var tx = LinearTaps(inWidth, outWidth);
        return ResizePlanes(source, planes, inHeight, inWidth, outHeight, outWidth, (src, dst) =>
        {
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
        });
    }

    private delegate void PlaneResize(ReadOnlySpan<float> source, Span<float> destination);

    // Checks the sizes, then resizes each of the planes from its own slice into its own slice of a new array.
    private static float[] ResizePlanes(ReadOnlySpan<float> source, int planes, int inHeight, int inWidth, int outHeight, int outWidth, PlaneResize resize)
    {
        if (planes < 0) throw new ArgumentOutOfRangeException(nameof(planes));
        if (source.Length != checked(planes * inHeight * inWidth))
            throw new ArgumentException($"Expected {planes}×{inHeight}×{inWidth} values, got {source.Length}.", nameof(source));
        var result = new float[checked(planes * outHeight * outWidth)];
        for (int p = 0; p < planes; p++)
            resize(source.Slice(p * inHeight * inWidth, inHeight * inWidth), result.AsSpan(p * outHeight * outWidth, outHeight * outWidth));
        return result;
    }

    /// <summary>The four source taps (indices clamped to the border) and weights of one output index along one axis.</summary>
    /// <param name="Indices">Source indices <c>i−1, i, i+1, i+2</c>, each clamped to <c>[0, in−1]</c>.</param>
    /// <param name="Weights">Cubic convolution weights of the four taps.</param>
    public readonly record struct CubicTap(int[] Indices, float[] Weights);

    // PyTorch's cubic convolution constant (aten/src/ATen/native/UpSample.h, get_cubic_upsample_coefficients).
    private const float CubicA = -0.75f;

    /// <summary>
    /// Taps of a cubic resize from <paramref name="inSize"/> to <paramref name="outSize"/> samples with
    /// <c>align_corners=False</c>, as PyTorch's <c>upsample_bicubic2d</c> computes them in float: source
    /// <c>s = (o + 0.5)·in/out − 0.5</c> (not clamped at 0, unlike the linear case), <c>i = ⌊s⌋</c>, <c>t = s − i</c>, and the
    /// Keys cubic convolution weights with <c>a = −0.75</c>; taps outside the input read the nearest border sample.
    /// </summary>
    /// <remarks>
    /// libtorch's CPU kernel (aten/src/ATen/native/cpu/UpSampleKernel.cpp) is compiled with fused multiply-adds, which
    /// the compiler contracts from <c>a·b + c</c>; the same contractions here (<see cref="MathF.FusedMultiplyAdd"/>, exact on
    /// every CPU) reproduce its results bit for bit, where plain float arithmetic differs by a few units in the last place.
    /// </remarks>
    public static CubicTap[] CubicTaps(int inSize, int outSize)
    {
        if (inSize <= 0) throw new ArgumentOutOfRangeException(nameof(inSize), "Sizes must be positive.");
        if (outSize <= 0) throw new ArgumentOutOfRangeException(nameof(outSize), "Sizes must be positive.");
        float scale = (float)inSize / outSize;
        var taps = new CubicTap[outSize];
        for (int o = 0; o < outSize; o++)
        {
            float src = MathF.FusedMultiplyAdd(scale, o + 0.5f, -0.5f);
            // guard_index_and_lambda: the index never passes the last sample and t stays in [0, 1].
            int i = Math.Min((int)MathF.Floor(src), inSize - 1);
            float t = Math.Clamp(src - i, 0f, 1f);
            var indices = new int[4];
            for (int k = 0; k < 4; k++) indices[k] = Math.Clamp(i - 1 + k, 0, inSize - 1);
            float x2 = 1f - t;
            taps[o] = new CubicTap(indices, [CubicFar(t + 1f), CubicNear(t), CubicNear(x2), CubicFar(x2 + 1f)]);
        }
        return taps;
    }

    // cubic_convolution1, ((A + 2)·x − (A + 3))·x·x + 1 for |x| ≤ 1, contracted as libtorch's build does.
    private static float CubicNear(float x) =>
        MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(CubicA + 2f, x, -(CubicA + 3f)) * x, x, 1f);

    // cubic_convolution2, ((A·x − 5A)·x + 8A)·x − 4A for 1 < |x| < 2.
    private static float CubicFar(float x) =>
        MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(CubicA, x, -5f * CubicA), x, 8f * CubicA), x, -4f * CubicA);

    // v0·w0 + v1·w1 + v2·w2 + v3·w3 as libtorch's four-tap Interpolate evaluates it once contracted.
    private static float Dot4(float v0, float w0, float v1, float w1, float v2, float w2, float v3, float w3) =>
        MathF.FusedMultiplyAdd(v3, w3, MathF.FusedMultiplyAdd(v2, w2, MathF.FusedMultiplyAdd(v0, w0, v1 * w1)));

    /// <summary>
    /// Bicubically resizes <paramref name="planes"/> row-major planes of <paramref name="inHeight"/>×<paramref name="inWidth"/>
    /// to <paramref name="outHeight"/>×<paramref name="outWidth"/> as PyTorch's <c>F.interpolate(mode="bicubic",
    /// align_corners=False)</c>: four width taps per row, then the four rows combined, with libtorch's contractions.
    /// </summary>
    /// <returns>A new array of <c>planes·outHeight·outWidth</c> values.</returns>
    public static float[] ResizeBicubic(ReadOnlySpan<float> source, int planes, int inHeight, int inWidth, int outHeight, int outWidth)
    {
        var ty = CubicTaps(inHeight, outHeight);
        var tx = CubicTaps(inWidth, outWidth);
        return ResizePlanes(source, planes, inHeight, inWidth, outHeight, outWidth, (src, dst) =>
        {
            Span<float> rows = stackalloc float[4];
            for (int y = 0; y < outHeight; y++)
            {
                var (yi, yw) = ty[y];
                for (int x = 0; x < outWidth; x++)
                {
                    var (xi, xw) = tx[x];
                    for (int k = 0; k < 4; k++)
                    {
                        var row = src.Slice(yi[k] * inWidth, inWidth);
                        rows[k] = Dot4(row[xi[0]], xw[0], row[xi[1]], xw[1], row[xi[2]], xw[2], row[xi[3]], xw[3]);
                    }
                    dst[y * outWidth + x] = Dot4(rows[0], yw[0], rows[1], yw[1], rows[2], yw[2], rows[3], yw[3]);
                }
            }
        });
    }
}
