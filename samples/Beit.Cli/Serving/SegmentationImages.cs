using Microsoft.ML.Beit.Scoring;
using SkiaSharp;

namespace Beit.Cli.Serving;

/// <summary>One class in a segmentation answer.</summary>
/// <param name="Index">The class index (the label map's value).</param>
/// <param name="Label">The class name.</param>
/// <param name="Fraction">Its share of the image's pixels.</param>
/// <param name="Color">Its colour in the overlay, <c>#rrggbb</c>.</param>
internal sealed record SegmentClass(int Index, string Label, double Fraction, string Color);

/// <summary><c>POST /v1/segment</c> as JSON: the map's size and the classes present, most pixels first.</summary>
internal sealed record SegmentResponse(BeitServer.Size Size, IReadOnlyList<SegmentClass> Classes);

/// <summary>Segmentation pictures for the server: the label map as PNG, the overlay, and the per-class summary.</summary>
internal static class SegmentationImages
{
    /// <summary>The overlay's opacity of the class colours.</summary>
    private const double Alpha = 0.5;

    public static SegmentResponse Summary(BeitSegmentation result, IReadOnlyList<string> labels)
    {
        var fractions = result.ClassFractions(labels.Count);
        var classes = fractions.Select((f, i) => new SegmentClass(i, labels[i], f, Hex(Color(i))))
            .Where(c => c.Fraction > 0).OrderByDescending(c => c.Fraction).ToList();
        return new SegmentResponse(new BeitServer.Size(result.Size.Height, result.Size.Width), classes);
    }

    /// <summary>The label map as an 8-bit grayscale PNG (pixel value = class index), as ADE20K's annotations store it.</summary>
    public static byte[] LabelMapPng(BeitSegmentation result)
    {
        var (h, w) = (result.Size.Height, result.Size.Width);
        var info = new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque);
        var pixels = new byte[checked(w * h)];
        for (int i = 0; i < pixels.Length; i++)
            pixels[i] = result.Labels[i] is >= 0 and <= 255 ? (byte)result.Labels[i] : (byte)255;
        return Encode(info, pixels);
    }

    /// <summary>The image with each pixel's class colour blended over it at 50 %.</summary>
    public static byte[] OverlayPng(BeitSegmentation result)
    {
        var (h, w) = (result.Size.Height, result.Size.Width);
        var image = result.Image;
        if (image.Height != h || image.Width != w)
            throw new InvalidOperationException($"The map is {h}x{w} but the image is {image.Height}x{image.Width}.");
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var pixels = new byte[checked(w * h * 4)];
        for (int i = 0; i < w * h; i++)
        {
            var (r, g, b) = Color(result.Labels[i]);
            pixels[4 * i] = Blend(image.Pixels[3 * i], r);
            pixels[4 * i + 1] = Blend(image.Pixels[3 * i + 1], g);
            pixels[4 * i + 2] = Blend(image.Pixels[3 * i + 2], b);
            pixels[4 * i + 3] = 255;
        }
        return Encode(info, pixels);
    }

    private static byte Blend(byte under, byte over) => (byte)Math.Round(under * (1 - Alpha) + over * Alpha);

    private static byte[] Encode(SKImageInfo info, byte[] pixels)
    {
        using var bitmap = new SKBitmap();
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(pixels, System.Runtime.InteropServices.GCHandleType.Pinned);
        try
        {
            bitmap.InstallPixels(info, handle.AddrOfPinnedObject(), info.RowBytes);
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            return data.ToArray();
        }
        finally
        {
            handle.Free();
        }
    }

    /// <summary>A fixed, well-spread colour per class (golden-angle hues), the same in the overlay and the legend.</summary>
    public static (byte R, byte G, byte B) Color(int index)
    {
        double hue = (index * 137.508) % 360, s = 0.75, v = 0.95;
        double c = v * s, x = c * (1 - Math.Abs(hue / 60 % 2 - 1)), m = v - c;
        var (r, g, b) = (int)(hue / 60) switch
        {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        return ((byte)Math.Round((r + m) * 255), (byte)Math.Round((g + m) * 255), (byte)Math.Round((b + m) * 255));
    }

    private static string Hex((byte R, byte G, byte B) c) => $"#{c.R:x2}{c.G:x2}{c.B:x2}";
}
