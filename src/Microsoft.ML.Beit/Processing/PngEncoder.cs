using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// A small lossless PNG writer (ISO/IEC 15948): 8-bit RGB, 8-bit palette and 16-bit grey, no interlace, one IDAT.
/// Deterministic bytes for the same pixels, so rendered outputs can be compared and cached.
/// </summary>
internal static class PngEncoder
{
    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Encodes HWC RGB bytes (<c>height·width·3</c>).</summary>
    public static byte[] EncodeRgb(ReadOnlySpan<byte> hwc, int width, int height)
    {
        CheckSize(width, height);
        if (hwc.Length != (long)width * height * 3) throw new ArgumentException($"A {width}x{height} RGB image needs {(long)width * height * 3} bytes, got {hwc.Length}.", nameof(hwc));
        return Encode(width, height, bitDepth: 8, colorType: 2, palette: default, hwc, width * 3, bytesPerPixel: 3);
    }

    /// <summary>Encodes one 8-bit palette index per pixel with <paramref name="paletteRgb"/> (3 bytes per entry, at most 256 entries).</summary>
    public static byte[] EncodePalette(ReadOnlySpan<byte> indices, int width, int height, ReadOnlySpan<byte> paletteRgb)
    {
        CheckSize(width, height);
        if (indices.Length != (long)width * height) throw new ArgumentException($"A {width}x{height} palette image needs {(long)width * height} indices, got {indices.Length}.", nameof(indices));
        if (paletteRgb.Length == 0 || paletteRgb.Length % 3 != 0 || paletteRgb.Length > 256 * 3)
            throw new ArgumentException($"A PNG palette holds 1 to 256 RGB entries; got {paletteRgb.Length} bytes.", nameof(paletteRgb));
        return Encode(width, height, bitDepth: 8, colorType: 3, paletteRgb, indices, width, bytesPerPixel: 1);
    }

    /// <summary>Encodes one 16-bit grey value per pixel (written big-endian, as PNG requires).</summary>
    public static byte[] EncodeGrey16(ReadOnlySpan<ushort> values, int width, int height)
    {
        CheckSize(width, height);
        if (values.Length != (long)width * height) throw new ArgumentException($"A {width}x{height} grey image needs {(long)width * height} values, got {values.Length}.", nameof(values));
        var bytes = new byte[checked(values.Length * 2)];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2 * i), values[i]);
        return Encode(width, height, bitDepth: 16, colorType: 0, palette: default, bytes, checked(width * 2), bytesPerPixel: 2);
    }

    private static void CheckSize(int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"PNG dimensions must be positive, got {width}x{height}.");
    }

    private static byte[] Encode(int width, int height, byte bitDepth, byte colorType, ReadOnlySpan<byte> palette, ReadOnlySpan<byte> pixels, int rowBytes, int bytesPerPixel)
    {
        using var png = new MemoryStream();
        png.Write(Signature);
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = bitDepth;
        header[9] = colorType;
        // compression 0 (deflate), filter method 0, no interlace
        WriteChunk(png, "IHDR"u8, header);
        if (!palette.IsEmpty) WriteChunk(png, "PLTE"u8, palette);

        using var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.Fastest, leaveOpen: true))
        {
            // The Sub filter (type 1) on every row: cheap, and it makes smooth photos and flat label regions compress well.
            var row = new byte[rowBytes + 1];
            row[0] = 1;
            for (int y = 0; y < height; y++)
            {
                var src = pixels.Slice(y * rowBytes, rowBytes);
                for (int i = 0; i < bytesPerPixel; i++) row[1 + i] = src[i];
                for (int i = bytesPerPixel; i < rowBytes; i++) row[1 + i] = (byte)(src[i] - src[i - bytesPerPixel]);
                z.Write(row);
            }
        }
        WriteChunk(png, "IDAT"u8, idat.GetBuffer().AsSpan(0, (int)idat.Length));
        WriteChunk(png, "IEND"u8, []);
        return png.ToArray();
    }

    private static void WriteChunk(Stream png, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        var typed = new byte[4 + data.Length];
        type.CopyTo(typed);
        data.CopyTo(typed.AsSpan(4));
        png.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(word, PngCrc.Compute(typed));
        png.Write(word);
    }
}
