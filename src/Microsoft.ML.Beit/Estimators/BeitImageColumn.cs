using System.Buffers.Binary;
using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// The layout of a decoded-image column (the output of <c>LoadBeitImages</c>, the input of <c>BeitImageProcessor</c>):
/// a variable-size <c>Vector&lt;Byte&gt;</c> holding a 12-byte header — the magic <c>RGB8</c>, the width and the height
/// as little-endian int32 — followed by the pixels, <c>[height, width, 3]</c> RGB row-major. ML.NET's <c>MLImage</c>
/// cannot be a column of a saved custom mapping, so images travel through pipelines as these self-describing bytes.
/// <para>
/// A header alone with width and height 0 is the <i>missing image</i>: the value <c>LoadBeitImages</c> writes for a
/// row it could not load when it has an error column (<see cref="LoadBeitImagesEstimator.Options.ErrorColumnName"/>).
/// <c>BeitImageProcessor</c> turns it into a single NaN pixel value, and the model stages then give NaN scores,
/// features and logits, no predicted label (the key's missing value 0) and an empty label map for that row.
/// </para>
/// </summary>
public static class BeitImageColumn
{
    /// <summary>Bytes before the pixels.</summary>
    public const int HeaderLength = 12;

    private const uint Magic = 0x38424752; // "RGB8", little-endian

    /// <summary>An image as column bytes (header + pixels), e.g. to feed <c>BeitImageProcessor</c> from your own pixels.</summary>
    public static byte[] Encode(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var bytes = new byte[HeaderLength + image.Pixels.Length];
        WriteHeader(bytes, image.Width, image.Height);
        image.Pixels.CopyTo(bytes, HeaderLength);
        return bytes;
    }

    /// <summary>Copies column bytes back into an image.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a decoded-image column value.</exception>
    public static RgbImage Decode(ReadOnlySpan<byte> column)
    {
        if (!TryRead(column, out int width, out int height, out var pixels, out string? problem))
            throw new InvalidDataException(problem);
        return new RgbImage(new PixelSize(height, width), pixels.ToArray());
    }

    /// <summary>Reads the height and width of a column value; false when the value is not a decoded image.</summary>
    public static bool TryGetSize(ReadOnlySpan<byte> column, out PixelSize size)
    {
        bool ok = TryRead(column, out int width, out int height, out _, out _);
        size = new PixelSize(height, width);
        return ok;
    }

    /// <summary>Whether <paramref name="column"/> is the missing-image marker (a bad image that <c>LoadBeitImages</c> skipped).</summary>
    public static bool IsMissing(ReadOnlySpan<byte> column) =>
        column.Length == HeaderLength && BinaryPrimitives.ReadUInt32LittleEndian(column) == Magic &&
        BinaryPrimitives.ReadInt64LittleEndian(column[4..]) == 0;

    internal static byte[] MissingValue()
    {
        var bytes = new byte[HeaderLength];
        WriteHeader(bytes, 0, 0);
        return bytes;
    }

    /// <summary>The pixel-values row of a missing image: one NaN (real pixel values are always finite).</summary>
    internal static bool IsMissingPixels(ReadOnlySpan<float> pixels) => pixels.Length == 1 && float.IsNaN(pixels[0]);

    internal static void WriteHeader(Span<byte> destination, int width, int height)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], width);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], height);
    }

    internal static bool TryRead(ReadOnlySpan<byte> column, out int width, out int height, out ReadOnlySpan<byte> pixels, out string? problem)
    {
        width = height = 0;
        pixels = default;
        if (column.Length < HeaderLength || BinaryPrimitives.ReadUInt32LittleEndian(column) != Magic)
        {
            problem = column.Length == 0
                ? "the value is empty, not a decoded image (use LoadBeitImages to decode image files or bytes)."
                : $"the {column.Length} bytes are not a decoded image (expected the output of LoadBeitImages: an RGB8 header, then pixels).";
            return false;
        }
        width = BinaryPrimitives.ReadInt32LittleEndian(column[4..]);
        height = BinaryPrimitives.ReadInt32LittleEndian(column[8..]);
        long expected = (long)width * height * 3;
        if (width <= 0 || height <= 0 || column.Length - HeaderLength != expected)
        {
            problem = $"the decoded image header says {width}x{height}, which does not match its {column.Length - HeaderLength} pixel bytes.";
            return false;
        }
        pixels = column.Slice(HeaderLength, (int)expected);
        problem = null;
        return true;
    }
}
