using Microsoft.ML.Beit.Processing;

namespace Beit.Preprocessing.Benchmarks;

/// <summary>
/// The baseline: the same resize (antialiased bicubic, a = −0.5), crop, rescale and normalize written the
/// straightforward way: float arithmetic, kernel weights evaluated for every output sample, a float intermediate,
/// per-value normalisation. It is what a direct port of the algorithm gives before any optimisation.
/// </summary>
internal static class NaiveProcessor
{
    public static void Preprocess(RgbImage image, int resizeH, int resizeW, int crop, Span<float> chw)
    {
        int w = image.Width, h = image.Height;
        var src = image.Pixels;
        var mid = new float[h * resizeW * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < resizeW; x++)
                for (int c = 0; c < 3; c++)
                    mid[(y * resizeW + x) * 3 + c] = Sample(i => src[(y * w + i) * 3 + c], w, resizeW, x);
        var outImg = new float[resizeH * resizeW * 3];
        for (int y = 0; y < resizeH; y++)
            for (int x = 0; x < resizeW; x++)
                for (int c = 0; c < 3; c++)
                    outImg[(y * resizeW + x) * 3 + c] = Sample(i => mid[(i * resizeW + x) * 3 + c], h, resizeH, y);
        int top = (resizeH - crop) / 2, left = (resizeW - crop) / 2;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < crop; y++)
                for (int x = 0; x < crop; x++)
                {
                    float v = Math.Clamp(MathF.Round(outImg[((y + top) * resizeW + x + left) * 3 + c]), 0, 255);
                    chw[(c * crop + y) * crop + x] = (v / 255f - 0.5f) / 0.5f;
                }
    }

    private static float Sample(Func<int, float> at, int inSize, int outSize, int o)
    {
        float scale = (float)inSize / outSize, fs = Math.Max(scale, 1f), support = 2f * fs;
        float center = (o + 0.5f) * scale;
        int lo = Math.Max((int)(center - support + 0.5f), 0), hi = Math.Min((int)(center + support + 0.5f), inSize);
        float sum = 0, wsum = 0;
        for (int i = lo; i < hi; i++)
        {
            float wgt = Cubic((i - center + 0.5f) / fs);
            sum += at(i) * wgt;
            wsum += wgt;
        }
        return wsum == 0 ? 0 : sum / wsum;
    }

    private static float Cubic(float x)
    {
        const float a = -0.5f;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }
}
