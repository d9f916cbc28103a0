using System.Runtime.InteropServices;
using Microsoft.ML.Beit.Processing;
using SkiaSharp;

namespace Microsoft.ML.Beit.Attention;

/// <summary>
/// Draws a map over the patch grid (an attention map from <see cref="BeitAttentionMaps.Map"/>) on the image it was
/// computed from: min–max normalised, bilinearly upsampled (PyTorch's <c>align_corners=False</c> sampling) over the
/// part of the image the model saw, coloured with the 'jet' colour map (blue = low, red = high) and alpha-blended.
/// </summary>
public static class BeitHeatMap
{
    /// <summary>The largest image <see cref="Overlay"/> draws on, in pixels (BeitLimits' decoded-image bound is larger; a heat map needs no more).</summary>
    public const long MaxPixels = 100_000_000;

    /// <summary>
    /// Returns a new image: <paramref name="image"/> with <paramref name="map"/> (<c>[grid.Height·grid.Width]</c>, row-major)
    /// blended over it. With a <paramref name="processor"/>, the map covers the window that processor crops (its
    /// resize and center crop, mapped back to the image's pixels); without one, the whole image.
    /// </summary>
    /// <param name="image">The original image.</param>
    /// <param name="map">The values over the patch grid.</param>
    /// <param name="grid">The patch grid, <c>(height, width)</c>.</param>
    /// <param name="processor">The model's preprocessing, to place the map over what the model saw.</param>
    /// <param name="alpha">Weight of the colour map, 0 (image only) to 1 (colours only); default 0.5.</param>
    /// <exception cref="ArgumentException">The map does not have <c>grid.Height·grid.Width</c> values, or holds a NaN or infinity.</exception>
    public static RgbImage Overlay(RgbImage image, ReadOnlySpan<float> map, PixelSize grid, BeitImageProcessor? processor = null, float alpha = 0.5f)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (grid.Height <= 0 || grid.Width <= 0) throw new ArgumentOutOfRangeException(nameof(grid), $"The grid {grid.Height}x{grid.Width} must be positive.");
        if (map.Length != (long)grid.Height * grid.Width)
            throw new ArgumentException($"The map holds {map.Length} values; a {grid.Height}x{grid.Width} grid needs {(long)grid.Height * grid.Width}.", nameof(map));
        if (!(alpha is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(alpha), "alpha must be in [0, 1].");
        if ((long)image.Width * image.Height > MaxPixels)
            throw new ArgumentException($"The image is {image.Width}x{image.Height}; heat maps are drawn on at most {MaxPixels:N0} pixels.", nameof(image));
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (var v in map)
        {
            if (!float.IsFinite(v)) throw new ArgumentException("The map holds a NaN or an infinity.", nameof(map));
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        double range = max - min;
        var norm = new double[map.Length];
        for (int i = 0; i < map.Length; i++) norm[i] = range > 0 ? (map[i] - min) / range : 0.5;

        var (top, left, height, width) = Window(image, processor);
        var result = new RgbImage(image.Size, (byte[])image.Pixels.Clone());
        var px = result.Pixels;
        // Per-column sample positions, once.
        var xs = new (int X0, int X1, double Fx)[image.Width];
        var inX = new bool[image.Width];
        for (int x = 0; x < image.Width; x++)
        {
            double u = (x + 0.5 - left) / width * grid.Width;
            inX[x] = u >= 0 && u < grid.Width;
            xs[x] = Sample(u, grid.Width);
        }
        for (int y = 0; y < image.Height; y++)
        {
            double v = (y + 0.5 - top) / height * grid.Height;
            if (!(v >= 0 && v < grid.Height)) continue;
            var (y0, y1, fy) = Sample(v, grid.Height);
            for (int x = 0; x < image.Width; x++)
            {
                if (!inX[x]) continue;
                var (x0, x1, fx) = xs[x];
                double a = norm[y0 * grid.Width + x0] * (1 - fx) + norm[y0 * grid.Width + x1] * fx;
                double b = norm[y1 * grid.Width + x0] * (1 - fx) + norm[y1 * grid.Width + x1] * fx;
                var (r, g, bl) = Jet(a * (1 - fy) + b * fy);
                int o = (y * image.Width + x) * 3;
                px[o] = Blend(px[o], r, alpha);
                px[o + 1] = Blend(px[o + 1], g, alpha);
                px[o + 2] = Blend(px[o + 2], bl, alpha);
            }
        }
        return result;
    }

    /// <summary>Encodes an image as a lossless 8-bit RGB PNG.</summary>
    public static byte[] EncodePng(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int plane = checked(image.Width * image.Height);
        var rgba = new byte[checked(4 * plane)];
        var src = image.Pixels;
        for (int p = 0; p < plane; p++)
        {
            rgba[4 * p] = src[3 * p];
            rgba[4 * p + 1] = src[3 * p + 1];
            rgba[4 * p + 2] = src[3 * p + 2];
            rgba[4 * p + 3] = 255;
        }
        using var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new IOException($"SkiaSharp could not encode a {image.Width}x{image.Height} PNG.");
        return data.ToArray();
    }

    /// <summary>
    /// The window of <paramref name="image"/> the processor's output covers, in the image's pixels (top, left, height,
    /// width); it may extend past the image when the processor pads a small image.
    /// </summary>
    internal static (double Top, double Left, double Height, double Width) Window(RgbImage image, BeitImageProcessor? processor)
    {
        if (processor is null) return (0, 0, image.Height, image.Width);
        var resized = processor.DoResize ? processor.Size.GetOutputSize(image.Size) : new PixelSize(image.Height, image.Width);
        if (!processor.DoCenterCrop) return (0, 0, image.Height, image.Width);
        var crop = processor.CropSize;
        // transformers' center_crop: top = (h − crop_h) // 2 (floor, also when negative: the image is padded).
        int top = (int)Math.Floor((resized.Height - crop.Height) / 2.0), left = (int)Math.Floor((resized.Width - crop.Width) / 2.0);
        double sy = (double)image.Height / resized.Height, sx = (double)image.Width / resized.Width;
        return (top * sy, left * sx, crop.Height * sy, crop.Width * sx);
    }

    // align_corners=False: source coordinate c − 0.5, clamped to the edge cells.
    private static (int I0, int I1, double F) Sample(double u, int n)
    {
        double c = Math.Clamp(u - 0.5, 0, n - 1);
        int i0 = Math.Min((int)c, n - 1);
        int i1 = Math.Min(i0 + 1, n - 1);
        return (i0, i1, c - i0);
    }

    private static byte Blend(byte image, double colour, float alpha) =>
        (byte)Math.Clamp(Math.Round((1 - alpha) * image + alpha * colour, MidpointRounding.AwayFromZero), 0, 255);

    /// <summary>The 'jet' colour map (MATLAB's, piecewise linear) at <paramref name="x"/> in [0, 1], as 0–255 R, G, B.</summary>
    internal static (double R, double G, double B) Jet(double x)
    {
        x = Math.Clamp(x, 0, 1);
        static double C(double v) => 255 * Math.Clamp(v, 0, 1);
        return (C(1.5 - Math.Abs(4 * x - 3)), C(1.5 - Math.Abs(4 * x - 2)), C(1.5 - Math.Abs(4 * x - 1)));
    }
}
