namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// An 8-bit RGB image, rows top to bottom, pixels interleaved as R, G, B with no row padding: what Pillow's
/// <c>Image.convert("RGB")</c> holds and what <see cref="BeitImageProcessor"/> consumes.
/// </summary>
public sealed class RgbImage
{
    /// <summary>Wraps <paramref name="pixels"/> (not copied), which must hold exactly <c>height·width·3</c> bytes.</summary>
    /// <exception cref="ArgumentException">A dimension is not positive or the buffer has the wrong length.</exception>
    public RgbImage(PixelSize size, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (size.Width <= 0 || size.Height <= 0) throw new ArgumentException($"Image dimensions must be positive, got {size}.");
        if (pixels.LongLength != (long)size.Width * size.Height * 3)
            throw new ArgumentException($"An RGB image of {size} needs {(long)size.Width * size.Height * 3} bytes, got {pixels.LongLength}.", nameof(pixels));
        Width = size.Width;
        Height = size.Height;
        Pixels = pixels;
    }

    /// <summary>A black image of the given size.</summary>
    public RgbImage(PixelSize size)
        : this(size, new byte[checked(size.Width > 0 && size.Height > 0 ? size.Width * size.Height * 3 : 0)])
    {
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The height and width.</summary>
    public PixelSize Size => new(Height, Width);

    /// <summary>The pixels, <c>[Height, Width, 3]</c> row-major (HWC).</summary>
    public byte[] Pixels { get; }

    /// <summary>
    /// Copies 4-byte pixels (for example ML.NET's <c>MLImage</c> or a SkiaSharp bitmap) into a new image, dropping
    /// the fourth byte as Pillow's <c>convert("RGB")</c> drops alpha.
    /// </summary>
    /// <param name="pixels">The pixels, <paramref name="rowBytes"/> bytes per row.</param>
    /// <param name="size">The height and width in pixels.</param>
    /// <param name="bgr">True when the bytes are ordered B, G, R, A; false for R, G, B, A.</param>
    /// <param name="rowBytes">Bytes per row; 0 means <c>width·4</c>.</param>
    public static RgbImage FromFourChannel(ReadOnlySpan<byte> pixels, PixelSize size, bool bgr, int rowBytes = 0)
    {
        int width = size.Width, height = size.Height;
        if (rowBytes == 0) rowBytes = width * 4;
        if (width <= 0 || height <= 0) throw new ArgumentException($"Image dimensions must be positive, got {width}x{height}.");
        if (rowBytes < width * 4 || pixels.Length < (long)rowBytes * (height - 1) + width * 4)
            throw new ArgumentException($"{pixels.Length} bytes cannot hold a {width}x{height} 4-channel image with {rowBytes} bytes per row.", nameof(pixels));
        var image = new RgbImage(size);
        var dst = image.Pixels;
        int r = bgr ? 2 : 0, b = bgr ? 0 : 2;
        for (int y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * rowBytes, width * 4);
            int o = y * width * 3;
            for (int x = 0; x < width; x++, o += 3)
            {
                dst[o] = row[4 * x + r];
                dst[o + 1] = row[4 * x + 1];
                dst[o + 2] = row[4 * x + b];
            }
        }
        return image;
    }
}
