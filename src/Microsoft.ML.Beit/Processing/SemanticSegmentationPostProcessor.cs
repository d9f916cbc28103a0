using Microsoft.ML.Beit.Modeling;

namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Hugging Face's <c>BeitImageProcessor.post_process_semantic_segmentation</c> in pure C#: per image, bilinearly
/// resize the class logits (<c>align_corners=False</c>, as <c>torch.nn.functional.interpolate</c>) to a target size,
/// then take the arg-max over classes. Without target sizes the arg-max is taken at logit resolution.
/// Shared by the ONNX scorer, the ML.NET segmenter and the TorchSharp model.
/// </summary>
internal static class SemanticSegmentationPostProcessor
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
    public static float[] ResizeBilinear(ReadOnlySpan<float> src, int channels, int inH, int inW, int outH, int outW) =>
        TorchInterpolation.ResizeBilinear(src, channels, inH, inW, outH, outW);

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
