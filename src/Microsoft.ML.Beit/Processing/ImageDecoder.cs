using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Decodes PNG, JPEG, BMP, GIF (first frame) and WebP into the pixels Pillow's <c>Image.open(f).convert("RGB")</c>
/// gives: grey replicated, alpha dropped (never premultiplied), palettes looked up, 16-bit PNG reduced as Pillow
/// reduces it. PNG and GIF are decoded by our own decoders (SkiaSharp cannot give Pillow's values for 16-bit PNG or
/// transparent GIF pixels); JPEG, BMP and WebP by SkiaSharp's codecs, unpremultiplied and without colour management
/// (Pillow ignores embedded profiles too); the tests check every mode against Pillow 9.4.
/// </summary>
/// <remarks>
/// Every failure is an <see cref="ImageDecodingException"/> whose message names the source and whose
/// <see cref="ImageDecodingException.Error"/> says why (empty, not an image, truncated, corrupt, too large,
/// unsupported, not a regular file). A missing file is a <see cref="FileNotFoundException"/>. A path must lead (after
/// symbolic links) to a regular file — a device such as <c>/dev/zero</c> would be read until memory runs out, and
/// opening a FIFO blocks forever — and no file longer than <see cref="ImageDecoderOptions.MaxFileBytes"/> is read.
/// </remarks>
public static class ImageDecoder
{
    /// <summary>Decodes the image file at <paramref name="path"/>.</summary>
    public static RgbImage Decode(string path, ImageDecoderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Decode(ReadFile(path, options), path, options);
    }

    /// <summary>Decodes an encoded image held in memory; <paramref name="sourceName"/> names it in errors.</summary>
    public static RgbImage Decode(byte[] data, string sourceName = "<bytes>", ImageDecoderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        options ??= ImageDecoderOptions.Default;
        var (w, h, pixels, orientation) = DecodeCore(data, sourceName, options, labels: false);
        if (options.ApplyExifOrientation) (w, h, pixels) = Exif.Apply(orientation, w, h, pixels, 3);
        return new RgbImage(new PixelSize(h, w), pixels);
    }

    /// <summary>Decodes an encoded image read from <paramref name="stream"/> to its end; <paramref name="sourceName"/> names it in errors.</summary>
    public static RgbImage Decode(Stream stream, string sourceName = "<stream>", ImageDecoderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Decode(ReadStream(stream, sourceName, (options ?? ImageDecoderOptions.Default).MaxFileBytes), sourceName, options);
    }

    /// <summary>
    /// Converts an ML.NET <see cref="MLImage"/> (BGRA or RGBA) by dropping its fourth byte. ML.NET decodes with
    /// SkiaSharp into <i>premultiplied</i> alpha, so pixels of a translucent image already differ from Pillow's;
    /// decode from the file or bytes instead when exact values matter for images with alpha.
    /// </summary>
    public static RgbImage Decode(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        bool bgr = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => true,
            MLPixelFormat.Rgba32 => false,
            _ => throw new ArgumentException($"MLImage pixel format {image.PixelFormat} is not supported.", nameof(image)),
        };
        return RgbImage.FromFourChannel(image.Pixels, new PixelSize(image.Height, image.Width), bgr);
    }

    /// <summary>
    /// Decodes a segmentation label map as <c>np.array(Image.open(f))</c> gives it: one byte per pixel, grey values
    /// or palette <i>indices</i> (not colours). Only single-channel PNG (grey ≤ 8 bits or palette), GIF (indices) and
    /// 8-bit grey JPEG/BMP/WebP qualify; anything else is <see cref="ImageDecodingError.Unsupported"/>.
    /// </summary>
    public static LabelMap DecodeLabelMap(string path, ImageDecoderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        return DecodeLabelMap(ReadFile(path, options), path, options);
    }

    /// <summary>Decodes a segmentation label map held in memory; see <see cref="DecodeLabelMap(string, ImageDecoderOptions?)"/>.</summary>
    public static LabelMap DecodeLabelMap(byte[] data, string sourceName = "<bytes>", ImageDecoderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        options ??= ImageDecoderOptions.Default;
        var (w, h, labels, orientation) = DecodeCore(data, sourceName, options, labels: true);
        if (options.ApplyExifOrientation) (w, h, labels) = Exif.Apply(orientation, w, h, labels, 1);
        return new LabelMap(new PixelSize(h, w), labels);
    }

    internal static void CheckSize(string source, long width, long height, ImageDecoderOptions options)
    {
        long pixels = width * height;
        if (pixels > options.MaxPixels)
            throw new ImageDecodingException(source, ImageDecodingError.TooLarge,
                $"{width}x{height} = {pixels:N0} pixels exceeds the limit of {options.MaxPixels:N0} (ImageDecoderOptions.MaxPixels).");
        if (pixels * 4 > Array.MaxLength)
            throw new ImageDecodingException(source, ImageDecodingError.TooLarge, $"{width}x{height} does not fit in one .NET array.");
    }

    /// <summary>Every image file this library reads comes through here: a regular file, at most <see cref="ImageDecoderOptions.MaxFileBytes"/>.</summary>
    internal static byte[] ReadFile(string path, ImageDecoderOptions? options)
    {
        long max = (options ?? ImageDecoderOptions.Default).MaxFileBytes;
        try
        {
            return IO.BeitFiles.ReadAllBytes(path, max);
        }
        catch (IO.BeitFiles.RefusedException e)
        {
            bool tooLarge = e.TooLarge;
            throw new ImageDecodingException(path, tooLarge ? ImageDecodingError.TooLarge : ImageDecodingError.NotARegularFile,
                tooLarge ? $"{e.Message} (ImageDecoderOptions.MaxFileBytes)." : e.Message + ".", e);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"Cannot read image '{path}': {e.Message}", e);
        }
    }

    private static byte[] ReadStream(Stream stream, string source, long maxBytes)
    {
        if (stream.CanSeek)
        {
            long left = stream.Length - stream.Position;
            if (left > Math.Min(maxBytes, Array.MaxLength))
                throw new ImageDecodingException(source, ImageDecodingError.TooLarge, $"{left:N0} bytes of encoded data, more than the limit of {maxBytes:N0} (ImageDecoderOptions.MaxFileBytes).");
        }
        using var ms = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            if (ms.Length + n > maxBytes)
                throw new ImageDecodingException(source, ImageDecodingError.TooLarge, $"more than the limit of {maxBytes:N0} bytes of encoded data (ImageDecoderOptions.MaxFileBytes).");
            ms.Write(buffer, 0, n);
        }
        return ms.ToArray();
    }

    private enum Format { Png, Jpeg, Gif, Bmp, WebP }

    private static Format Sniff(ReadOnlySpan<byte> d, string source)
    {
        if (d.Length == 0) throw new ImageDecodingException(source, ImageDecodingError.Empty, "0 bytes.");
        if (PngDecoder.Signature.StartsWith(d[..Math.Min(d.Length, 8)])) return Format.Png;
        if (d.Length >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return Format.Jpeg;
        if (d.StartsWith("GIF87a"u8) || d.StartsWith("GIF89a"u8)) return Format.Gif;
        if (d.Length >= 2 && d[0] == 'B' && d[1] == 'M') return Format.Bmp;
        if (d.Length >= 12 && d.StartsWith("RIFF"u8) && d[8..12].SequenceEqual("WEBP"u8)) return Format.WebP;
        // A prefix of a known signature is a cut-off image, not a foreign file.
        if (d.Length < 12 && (PngDecoder.Signature.StartsWith(d) || "GIF89a"u8.StartsWith(d) || "GIF87a"u8.StartsWith(d) ||
                              "RIFF"u8.StartsWith(d[..Math.Min(d.Length, 4)]) || (d.Length < 3 && d[0] == 0xFF)))
            throw new ImageDecodingException(source, ImageDecodingError.Truncated, $"only {d.Length} bytes.");
        string head = Convert.ToHexString(d[..Math.Min(d.Length, 8)]);
        throw new ImageDecodingException(source, ImageDecodingError.NotAnImage, $"unrecognised leading bytes {head}.");
    }

    /// <summary>
    /// Whether a file SkiaSharp failed on is shorter than its own structure says: a JPEG without its EOI marker, a
    /// RIFF (WebP) or BMP shorter than its size field. Lets a cut-off file be reported as truncated, not corrupt.
    /// </summary>
    private static bool LooksTruncated(ReadOnlySpan<byte> d, Format format) => format switch
    {
        Format.Jpeg => d.Length < 4 || d[^2] != 0xFF || d[^1] != 0xD9,
        Format.WebP => d.Length < 12 || System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(d[4..]) + 8L > d.Length,
        Format.Bmp => d.Length < 6 || System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(d[2..]) > d.Length,
        _ => false,
    };

    private static (int Width, int Height, byte[] Pixels, int Orientation) DecodeCore(byte[] data, string source, ImageDecoderOptions options, bool labels)
    {
        var format = Sniff(data, source);
        if (format == Format.Png)
        {
            var r = PngDecoder.Decode(data, source, options, labels ? PngDecoder.Target.Labels : PngDecoder.Target.Rgb);
            return (r.Width, r.Height, r.Pixels, r.Orientation);
        }
        if (format == Format.Gif)
        {
            var g = GifDecoder.Decode(data, source, options, labels);
            return (g.Width, g.Height, g.Pixels, 1);
        }
        return DecodeWithSkia(data, source, format, options, labels);
    }

    private static unsafe (int, int, byte[], int) DecodeWithSkia(byte[] data, string source, Format format, ImageDecoderOptions options, bool labels)
    {
        using var stream = new SKMemoryStream(data);
        using var codec = SKCodec.Create(stream, out var createResult);
        if (codec == null)
            throw new ImageDecodingException(source, ErrorOf(createResult, data, format), $"the {format} header cannot be read ({createResult}).");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0)
            throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"invalid size {info.Width}x{info.Height}.");
        CheckSize(source, info.Width, info.Height, options);
        int orientation = (int)codec.EncodedOrigin;
        if (labels && info.ColorType != SKColorType.Gray8)
            throw new ImageDecodingException(source, ImageDecodingError.Unsupported,
                $"a label map must be single-channel; this {format} decodes as {info.ColorType} (use a grey or palette PNG).");

        int channels = labels ? 1 : 4;
        // No colour space on the destination: SkiaSharp then does no colour management, like Pillow.
        var dstInfo = new SKImageInfo(info.Width, info.Height, labels ? SKColorType.Gray8 : SKColorType.Rgba8888,
                                      labels ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var buffer = new byte[(long)info.Width * info.Height * channels];
        SKCodecResult result;
        fixed (byte* p = buffer)
        {
            result = codec.GetPixels(dstInfo, (IntPtr)p, info.Width * channels, new SKCodecOptions(0));
        }
        if (result != SKCodecResult.Success)
            throw new ImageDecodingException(source, ErrorOf(result, data, format), $"the {format} pixel data cannot be decoded ({result}).");
        if (labels) return (info.Width, info.Height, buffer, orientation);
        var rgb = RgbImage.FromFourChannel(buffer, new PixelSize(info.Height, info.Width), bgr: false);
        return (info.Width, info.Height, rgb.Pixels, orientation);
    }

    private static ImageDecodingError ErrorOf(SKCodecResult result, byte[] data, Format format) => result switch
    {
        SKCodecResult.IncompleteInput => ImageDecodingError.Truncated,
        _ when LooksTruncated(data, format) => ImageDecodingError.Truncated,
        SKCodecResult.Unimplemented or SKCodecResult.InvalidConversion => ImageDecodingError.Unsupported,
        _ => ImageDecodingError.Corrupt,
    };
}
