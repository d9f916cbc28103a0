using System.Runtime.InteropServices;
using SkiaSharp;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>Writes 8-bit RGB images as lossless PNG (so decoding them gives back exactly the same pixels).</summary>
public static class PngWriter
{
    /// <summary>Writes CHW RGB bytes (<c>3·height·width</c>) to <paramref name="path"/> as PNG.</summary>
    public static void WriteRgb(string path, ReadOnlySpan<byte> chw, int height, int width)
    {
        int plane = width * height;
        if (chw.Length != 3 * plane) throw new ArgumentException($"Expected 3·{height}·{width} bytes, got {chw.Length}.");
        var rgba = new byte[4 * plane];
        for (int p = 0; p < plane; p++)
        {
            rgba[4 * p] = chw[p];
            rgba[4 * p + 1] = chw[plane + p];
            rgba[4 * p + 2] = chw[2 * plane + p];
            rgba[4 * p + 3] = 255;
        }
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new IOException($"Could not encode a {width}×{height} PNG for '{path}'.");
        // A demo image or an evaluation input is either whole or absent.
        Microsoft.ML.Beit.IO.AtomicFile.Write(path, tmp =>
        {
            using var file = File.Create(tmp);
            data.SaveTo(file);
        });
    }
}
