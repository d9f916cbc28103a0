namespace Microsoft.ML.Beit.Modeling;

/// <summary>
/// PyTorch's <c>AdaptiveAvgPool2d</c> for any input and output size, exactly: output cell <c>i</c> of <c>s</c> over an input
/// axis of length <c>n</c> averages <c>[floor(i·n/s), ceil((i+1)·n/s))</c>. The bins overlap when <c>s</c> does not divide
/// <c>n</c> (e.g. 40→3 and 40→6 in the ADE20K UperNet head), which is what the PyTorch ONNX exporter cannot express.
/// </summary>
internal static class AdaptiveAvgPooling
{
    /// <summary>The half-open input range <c>[Start, End)</c> of each of the <paramref name="outSize"/> output cells.</summary>
    public static (int Start, int End)[] Bins(int inSize, int outSize)
    {
        if (inSize <= 0) throw new ArgumentOutOfRangeException(nameof(inSize), "Sizes must be positive.");
        if (outSize <= 0) throw new ArgumentOutOfRangeException(nameof(outSize), "Sizes must be positive.");
        var bins = new (int, int)[outSize];
        for (int i = 0; i < outSize; i++)
        {
            long start = (long)i * inSize / outSize;                       // floor
            long end = ((long)(i + 1) * inSize + outSize - 1) / outSize;   // ceil
            bins[i] = ((int)start, (int)end);
        }
        return bins;
    }

    /// <summary>
    /// The pooling as a matrix of shape <c>[outHeight·outWidth, inHeight·inWidth]</c> (row-major): row <c>oy·outWidth+ox</c>
    /// holds <c>1/count</c> on its bin and 0 elsewhere, so <c>pooled = M · x</c> for a flattened plane <c>x</c>.
    /// </summary>
    public static float[] Matrix(int inHeight, int inWidth, int outHeight, int outWidth)
    {
        var by = Bins(inHeight, outHeight);
        var bx = Bins(inWidth, outWidth);
        int inArea = inHeight * inWidth;
        var m = new float[checked(outHeight * outWidth * inArea)];
        for (int oy = 0; oy < outHeight; oy++)
        {
            for (int ox = 0; ox < outWidth; ox++)
            {
                var (y0, y1) = by[oy];
                var (x0, x1) = bx[ox];
                float w = (float)(1.0 / ((y1 - y0) * (x1 - x0)));
                int row = (oy * outWidth + ox) * inArea;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        m[row + y * inWidth + x] = w;
            }
        }
        return m;
    }

    /// <summary>Pools <paramref name="planes"/> row-major planes directly (reference implementation of <see cref="Matrix"/>).</summary>
    public static float[] Pool(ReadOnlySpan<float> source, int planes, int inHeight, int inWidth, int outHeight, int outWidth)
    {
        if (source.Length != checked(planes * inHeight * inWidth))
            throw new ArgumentException($"Expected {planes}×{inHeight}×{inWidth} values, got {source.Length}.", nameof(source));
        var by = Bins(inHeight, outHeight);
        var bx = Bins(inWidth, outWidth);
        var result = new float[checked(planes * outHeight * outWidth)];
        for (int p = 0; p < planes; p++)
        {
            var src = source.Slice(p * inHeight * inWidth, inHeight * inWidth);
            for (int oy = 0; oy < outHeight; oy++)
            {
                for (int ox = 0; ox < outWidth; ox++)
                {
                    var (y0, y1) = by[oy];
                    var (x0, x1) = bx[ox];
                    double sum = 0;
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++)
                            sum += src[y * inWidth + x];
                    result[(p * outHeight + oy) * outWidth + ox] = (float)(sum / ((y1 - y0) * (x1 - x0)));
                }
            }
        }
        return result;
    }
}
