using System.Buffers.Binary;

namespace Microsoft.ML.Beit.Processing;

/// <summary>EXIF Orientation: reading the tag from a TIFF-structured block and applying it as Pillow's <c>ImageOps.exif_transpose</c>.</summary>
internal static class Exif
{
    /// <summary>The Orientation tag (0x0112) of IFD0, or 1 when absent or unreadable (a broken EXIF block is not an image error).</summary>
    public static int ReadOrientation(ReadOnlySpan<byte> exif)
    {
        if (exif.StartsWith("Exif\0\0"u8)) exif = exif[6..];
        if (exif.Length < 8) return 1;
        bool little;
        if (exif[0] == 'I' && exif[1] == 'I') little = true;
        else if (exif[0] == 'M' && exif[1] == 'M') little = false;
        else return 1;
        uint ifd = U32(exif[4..], little);
        if (ifd > exif.Length - 2) return 1;
        int count = U16(exif[(int)ifd..], little);
        for (int i = 0; i < count; i++)
        {
            long e = ifd + 2 + 12L * i;
            if (e + 12 > exif.Length) return 1;
            var entry = exif.Slice((int)e, 12);
            if (U16(entry, little) != 0x0112) continue;
            int type = U16(entry[2..], little);
            int value = type == 3 ? U16(entry[8..], little) : type == 4 ? (int)U32(entry[8..], little) : 1;
            return value is >= 1 and <= 8 ? value : 1;
        }
        return 1;
    }

    private static ushort U16(ReadOnlySpan<byte> b, bool little) =>
        little ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b);

    private static uint U32(ReadOnlySpan<byte> b, bool little) =>
        little ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);

    /// <summary>
    /// Applies an orientation (1..8) to interleaved pixels: 2 flip left-right, 3 rotate 180°, 4 flip top-bottom,
    /// 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise.
    /// </summary>
    public static (int Width, int Height, byte[] Pixels) Apply(int orientation, int width, int height, byte[] pixels, int channels)
    {
        if (orientation is <= 1 or > 8) return (width, height, pixels);
        bool swap = orientation >= 5;
        int ow = swap ? height : width, oh = swap ? width : height;
        var result = new byte[pixels.Length];
        for (int y = 0; y < oh; y++)
        {
            for (int x = 0; x < ow; x++)
            {
                (int sx, int sy) = orientation switch
                {
                    2 => (width - 1 - x, y),
                    3 => (width - 1 - x, height - 1 - y),
                    4 => (x, height - 1 - y),
                    5 => (y, x),
                    6 => (y, height - 1 - x),
                    7 => (width - 1 - y, height - 1 - x),
                    _ => (width - 1 - y, x),
                };
                pixels.AsSpan((sy * width + sx) * channels, channels).CopyTo(result.AsSpan((y * ow + x) * channels));
            }
        }
        return (ow, oh, result);
    }
}
