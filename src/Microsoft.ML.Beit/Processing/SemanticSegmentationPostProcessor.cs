namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Hugging Face's <c>BeitImageProcessor.post_process_semantic_segmentation</c> in pure C#: per image, bilinearly
/// resize the class logits (<c>align_corners=False</c>, as <c>torch.nn.functional.interpolate</c>) to a target size,
/// then take the arg-max over classes. Without target sizes the arg-max is taken at logit resolution.
/// Shared by the ONNX scorer, the ML.NET segmenter and the TorchSharp model.
/// </summary>
public static class SemanticSegmentationPostProcessor
{
    /// <summary>
    /// Turns segmentation logits <c>[B, C, h, w]</c> (row-major) into one label map per image.
    /// </summary>
    /// <param name="logits">The logits, <paramref name="batchSize"/>·<paramref name="numLabels"/>·<paramref name="height"/>·<paramref name="width"/> values.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="numLabels">C.</param>
    /// <param name="height">h.</param>
    /// <param name="width">w.</param>
    /// <param name="targetSizes">One (height, width) per image, or null to keep the logit resolution.</param>
    /// <returns>Per image, the row-major class index of each pixel of its target size.</returns>
    /// <exception cref="ArgumentException">The sizes do not describe <paramref name="logits"/>, or the target sizes are not one per image.</exception>
    public static int[][] Process(ReadOnlySpan<float> logits, int batchSize, int numLabels, int height, int width,
        IReadOnlyList<(int Height, int Width)>? targetSizes = null)
    {
        if (batchSize < 0 || numLabels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"Invalid logits shape [{batchSize},{numLabels},{height},{width}].");
        long perImage = (long)numLabels * height * width;
        if (logits.Length != batchSize * perImage)
            throw new ArgumentException($"Logits have {logits.Length} values, but [{batchSize},{numLabels},{height},{width}] needs {batchSize * perImage}.", nameof(logits));
        if (targetSizes != null && targetSizes.Count != batchSize)
            throw new ArgumentException($"Make sure that you pass in as many target sizes as the batch dimension of the logits ({targetSizes.Count} vs {batchSize}).", nameof(targetSizes));

        var result = new int[batchSize][];
        for (int b = 0; b < batchSize; b++)
        {
            var image = logits.Slice((int)(b * perImage), (int)perImage);
            if (targetSizes == null)
            {
                result[b] = ArgMax(image, numLabels, height * width);
                continue;
            }
            var (th, tw) = targetSizes[b];
            if (th <= 0 || tw <= 0) throw new ArgumentException($"Target size ({th},{tw}) of image {b} must be positive.", nameof(targetSizes));
            var resized = ResizeBilinear(image, numLabels, height, width, th, tw);
            result[b] = ArgMax(resized, numLabels, th * tw);
        }
        return result;
    }

    /// <summary>
    /// Resizes <c>[C, inH, inW]</c> planes to <c>[C, outH, outW]</c> exactly as PyTorch's CPU
    /// <c>interpolate(mode="bilinear", align_corners=False)</c> without antialiasing: source coordinate
    /// <c>(o + 0.5)·in/out − 0.5</c> clamped at 0, float arithmetic throughout.
    /// </summary>
    public static float[] ResizeBilinear(ReadOnlySpan<float> src, int channels, int inH, int inW, int outH, int outW)
    {
        if (src.Length != channels * inH * inW)
            throw new ArgumentException($"Source has {src.Length} values, expected {channels}·{inH}·{inW}.", nameof(src));
        var (y0, y1, wy0, wy1) = Taps(inH, outH);
        var (x0, x1, wx0, wx1) = Taps(inW, outW);
        var dst = new float[channels * outH * outW];
        for (int c = 0; c < channels; c++)
        {
            var plane = src.Slice(c * inH * inW, inH * inW);
            int o = c * outH * outW;
            for (int y = 0; y < outH; y++)
            {
                int r0 = y0[y] * inW, r1 = y1[y] * inW;
                for (int x = 0; x < outW; x++)
                {
                    // Same evaluation order as ATen's Interpolate<2>: width taps inside, height taps outside.
                    float top = plane[r0 + x0[x]] * wx0[x] + plane[r0 + x1[x]] * wx1[x];
                    float bottom = plane[r1 + x0[x]] * wx0[x] + plane[r1 + x1[x]] * wx1[x];
                    dst[o + y * outW + x] = top * wy0[y] + bottom * wy1[y];
                }
            }
        }
        return dst;
    }

    // ATen's compute_source_index_and_lambda for linear modes (align_corners=False).
    private static (int[] I0, int[] I1, float[] W0, float[] W1) Taps(int inSize, int outSize)
    {
        var i0 = new int[outSize];
        var i1 = new int[outSize];
        var w0 = new float[outSize];
        var w1 = new float[outSize];
        float scale = (float)inSize / outSize;
        for (int o = 0; o < outSize; o++)
        {
            if (inSize == outSize)
            {
                i0[o] = i1[o] = o;
                w0[o] = 1f;
                w1[o] = 0f;
                continue;
            }
            float real = scale * (o + 0.5f) - 0.5f;
            if (real < 0) real = 0;
            int idx = Math.Min((int)MathF.Floor(real), inSize - 1);
            float lambda = Math.Clamp(real - idx, 0f, 1f);
            i0[o] = idx;
            i1[o] = idx + (idx < inSize - 1 ? 1 : 0);
            w1[o] = lambda;
            w0[o] = 1f - lambda;
        }
        return (i0, i1, w0, w1);
    }

    // First maximum wins, as torch.argmax does; NaN counts as the maximum.
    private static int[] ArgMax(ReadOnlySpan<float> planes, int channels, int pixels)
    {
        var labels = new int[pixels];
        for (int p = 0; p < pixels; p++)
        {
            float best = planes[p];
            int arg = 0;
            for (int c = 1; c < channels && !float.IsNaN(best); c++)
            {
                float v = planes[c * pixels + p];
                if (v > best || float.IsNaN(v))
                {
                    best = v;
                    arg = c;
                }
            }
            labels[p] = arg;
        }
        return labels;
    }
}
