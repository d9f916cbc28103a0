using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Our own PNG decoder, because Pillow's colour-mode rules cannot be had from SkiaSharp: every colour type and bit
/// depth, Adam7 interlacing, converted exactly as <c>Image.open(f).convert("RGB")</c> does in Pillow 9.4 (1/2/4-bit
/// grey scaled to 0..255; 16-bit grey opened as mode I and clipped to 255; other 16-bit data reduced to its high
/// byte; palette entries past PLTE read as Pillow's grey ramp; alpha and tRNS ignored). Rows are inflated and
/// converted one at a time, so memory is the output plus two rows.
/// </summary>
internal static class PngDecoder
{
    public static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static readonly (int X0, int Y0, int Dx, int Dy)[] s_adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    /// <summary>What the decoded pixels become: 3-byte RGB, or one byte per pixel as <c>np.array(Image.open(f))</c> gives for a label map.</summary>
    public enum Target { Rgb, Labels }

    public sealed record Result(int Width, int Height, byte[] Pixels, int Orientation);

    public static Result Decode(byte[] data, string source, ImageDecoderOptions options, Target target)
    {
        var span = data.AsSpan();
        if (span.Length < Signature.Length || !span[..8].SequenceEqual(Signature))
            throw new ImageDecodingException(source, ImageDecodingError.Truncated, "the PNG signature is incomplete.");
        int pos = 8;
        int width = 0, height = 0, bitDepth = 0, colorType = 0, interlace = 0;
        bool haveHeader = false, haveEnd = false;
        byte[]? palette = null;
        int orientation = 1;
        var idat = new List<(int Offset, int Length)>();
        long idatBytes = 0;
        while (pos < span.Length)
        {
            if (span.Length - pos < 12)
                throw new ImageDecodingException(source, ImageDecodingError.Truncated, $"a chunk header at byte {pos} is cut off.");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(span[pos..]);
            var type = span.Slice(pos + 4, 4);
            string typeName = System.Text.Encoding.ASCII.GetString(type);
            if (length > int.MaxValue)
                throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"chunk '{typeName}' claims {length} bytes.");
            if (span.Length - pos - 12 < length)
                throw new ImageDecodingException(source, ImageDecodingError.Truncated, $"chunk '{typeName}' at byte {pos} needs {length} bytes, {span.Length - pos - 12} remain.");
            var body = span.Slice(pos + 8, (int)length);
            bool isIdat = typeName == "IDAT";
            // Pillow verifies the CRC of every chunk it parses (CRC-32 over type and data, as in zip: System.IO.Hashing);
            // IDAT goes straight to zlib, whose Adler-32 checks it.
            if (!isIdat && Crc32.HashToUInt32(span.Slice(pos + 4, 4 + (int)length)) != BinaryPrimitives.ReadUInt32BigEndian(span[(pos + 8 + (int)length)..]))
                throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"chunk '{typeName}' has a bad CRC.");
            if (!haveHeader && typeName != "IHDR")
                throw new ImageDecodingException(source, ImageDecodingError.Corrupt, "the first chunk is not IHDR.");
            switch (typeName)
            {
                case "IHDR":
                    if (length != 13) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, "IHDR is not 13 bytes.");
                    uint w = BinaryPrimitives.ReadUInt32BigEndian(body), h = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    bitDepth = body[8];
                    colorType = body[9];
                    interlace = body[12];
                    if (w == 0 || h == 0 || w > int.MaxValue || h > int.MaxValue)
                        throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"invalid size {w}x{h}.");
                    if (body[10] != 0 || body[11] != 0 || interlace > 1 || !ValidDepth(colorType, bitDepth))
                        throw new ImageDecodingException(source, ImageDecodingError.Corrupt,
                            $"invalid header (bit depth {bitDepth}, colour type {colorType}, compression {body[10]}, filter {body[11]}, interlace {interlace}).");
                    width = (int)w;
                    height = (int)h;
                    ImageDecoder.CheckSize(source, width, height, options);
                    haveHeader = true;
                    break;
                case "PLTE":
                    if (length % 3 != 0 || length > 768) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"PLTE has {length} bytes.");
                    palette = body.ToArray();
                    break;
                case "eXIf":
                    orientation = Exif.ReadOrientation(body);
                    break;
                case "IDAT":
                    idat.Add((pos + 8, (int)length));
                    idatBytes += length;
                    break;
                case "IEND":
                    haveEnd = true;
                    break;
            }
            pos += 12 + (int)length;
            if (haveEnd) break;
        }
        if (!haveHeader) throw new ImageDecodingException(source, ImageDecodingError.Truncated, "no IHDR chunk.");
        if (idat.Count == 0)
            throw new ImageDecodingException(source, haveEnd ? ImageDecodingError.Corrupt : ImageDecodingError.Truncated, "no image data (IDAT).");
        if (colorType == 3 && palette == null && target == Target.Rgb)
            throw new ImageDecodingException(source, ImageDecodingError.Corrupt, "a palette image has no PLTE chunk.");
        if (target == Target.Labels && colorType is 2 or 4 or 6)
            throw new ImageDecodingException(source, ImageDecodingError.Unsupported, $"a label map must be single-channel (grey or palette), this PNG has colour type {colorType}.");
        if (target == Target.Labels && colorType == 0 && bitDepth == 16)
            throw new ImageDecodingException(source, ImageDecodingError.Unsupported, "a 16-bit label map does not fit 8-bit labels.");

        int outChannels = target == Target.Rgb ? 3 : 1;
        var pixels = new byte[(long)width * height * outChannels];
        var lut = BuildLut(colorType, bitDepth, palette, target);
        using var zs = new ZLibStream(new ChunkStream(data, idat, idatBytes), CompressionMode.Decompress);
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        int bitsPerPixel = channels * bitDepth;
        int bpp = Math.Max(1, bitsPerPixel / 8);
        int maxRow = (int)(((long)width * bitsPerPixel + 7) / 8);
        // Rows are unfiltered out of place into buffers with 8 zero bytes in front (the "pixel left of the first
        // pixel" the filters read as 0) and 8 bytes of slack behind (the SIMD Paeth stores 4 bytes per pixel).
        const int Pad = 8;
        // zlib output is taken in large blocks (row-sized reads cost a native call each); rows are unfiltered from there.
        int block = Math.Max(1 << 18, 2 * (maxRow + 1));
        byte[] raw = ArrayPool<byte>.Shared.Rent(block + Pad);
        int start = 0, end = 0;
        byte[] cur = ArrayPool<byte>.Shared.Rent(maxRow + 2 * Pad), prev = ArrayPool<byte>.Shared.Rent(maxRow + 2 * Pad);
        try
        {
            Array.Clear(cur, 0, Pad);
            var passes = interlace == 1 ? s_adam7 : [(0, 0, 1, 1)];
            foreach (var (x0, y0, dx, dy) in passes)
            {
                if (x0 >= width || y0 >= height) continue;
                int pw = (width - x0 + dx - 1) / dx, ph = (height - y0 + dy - 1) / dy;
                int rowBytes = (int)(((long)pw * bitsPerPixel + 7) / 8);
                Array.Clear(prev, 0, rowBytes + Pad);
                for (int r = 0; r < ph; r++)
                {
                    if (end - start < rowBytes + 1)
                    {
                        Buffer.BlockCopy(raw, start, raw, 0, end - start);
                        end -= start;
                        start = 0;
                        end += zs.ReadAtLeast(raw.AsSpan(end, block - end), block - end, throwOnEndOfStream: false);
                        if (end < rowBytes + 1)
                            throw new ImageDecodingException(source, ImageDecodingError.Truncated, $"the image data ends at row {r} of {ph}{(interlace == 1 ? " in an interlace pass" : "")}.");
                    }
                    byte filter = raw[start];
                    if (filter > 4) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"unknown row filter type {filter}.");
                    Unfilter(filter, raw, start + 1, cur, prev, Pad, rowBytes, bpp);
                    start += rowBytes + 1;
                    ConvertRow(cur.AsSpan(Pad, rowBytes), pw, colorType, bitDepth, lut, pixels, outChannels,
                               ((long)(y0 + r * dy) * width + x0) * outChannels, dx * outChannels);
                    (cur, prev) = (prev, cur);
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException || (e is IOException && e is not ImageDecodingException))
        {
            // zlib reports damaged data as InvalidDataException or (for some errors) ZLibException, an IOException.
            throw new ImageDecodingException(source, ImageDecodingError.Corrupt, "the compressed image data is invalid: " + e.Message, e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
            ArrayPool<byte>.Shared.Return(cur);
            ArrayPool<byte>.Shared.Return(prev);
        }
        return new Result(width, height, pixels, orientation);
    }

    private static bool ValidDepth(int colorType, int bitDepth) => colorType switch
    {
        0 => bitDepth is 1 or 2 or 4 or 8 or 16,
        3 => bitDepth is 1 or 2 or 4 or 8,
        2 or 4 or 6 => bitDepth is 8 or 16,
        _ => false,
    };

    /// <summary>
    /// The value each raw sample of a ≤8-bit grey or palette image maps to. Palette: Pillow starts from a grey ramp
    /// and overwrites the PLTE entries (3 bytes per index). Grey: Pillow's L;2 / L;4 / 1 unpackers scale to 0..255.
    /// </summary>
    private static byte[]? BuildLut(int colorType, int bitDepth, byte[]? palette, Target target)
    {
        if (colorType == 3)
        {
            if (target == Target.Labels) return null;
            var lut = new byte[256 * 3];
            for (int i = 0; i < 256; i++) lut[3 * i] = lut[3 * i + 1] = lut[3 * i + 2] = (byte)i;
            palette!.CopyTo(lut, 0);
            return lut;
        }
        if (colorType == 0 && bitDepth < 8)
        {
            int max = (1 << bitDepth) - 1;
            var lut = new byte[max + 1];
            // Mode "1" images become 0/1 arrays in NumPy (bool), but 0/255 when converted to RGB.
            for (int v = 0; v <= max; v++) lut[v] = (byte)(bitDepth == 1 && target == Target.Labels ? v : v * 255 / max);
            return lut;
        }
        return null;
    }

    /// <summary>
    /// Undoes a row filter: the filtered row is at <paramref name="rawOffset"/> of <paramref name="raw"/>; the result
    /// goes to <paramref name="cur"/> at <paramref name="pad"/>, with the previous result row in <paramref name="prev"/>
    /// at the same offset.
    /// </summary>
    private static unsafe void Unfilter(byte filter, byte[] raw, int rawOffset, byte[] cur, byte[] prev, int pad, int n, int bpp)
    {
        fixed (byte* r0 = raw, c0 = cur, p0 = prev)
        {
            byte* x = r0 + rawOffset, o = c0 + pad, b = p0 + pad;
            switch (filter)
            {
                case 0:
                    Buffer.MemoryCopy(x, o, n, n);
                    break;
                case 1:
                    for (int i = 0; i < n; i++) o[i] = (byte)(x[i] + o[i - bpp]);
                    break;
                case 2:
                {
                    int i = 0;
                    for (; i <= n - 16; i += 16) (Vector128.Load(x + i) + Vector128.Load(b + i)).Store(o + i);
                    for (; i < n; i++) o[i] = (byte)(x[i] + b[i]);
                    break;
                }
                case 3:
                    for (int i = 0; i < n; i++) o[i] = (byte)(x[i] + ((o[i - bpp] + b[i]) >> 1));
                    break;
                default:
                    if (bpp is 3 or 4 && Vector128.IsHardwareAccelerated) PaethVector(x, o, b, n, bpp);
                    else PaethScalar(x, o, b, n, bpp);
                    break;
            }
        }
    }

    private static unsafe void PaethScalar(byte* x, byte* o, byte* b, int n, int bpp)
    {
        for (int i = 0; i < n; i++)
        {
            int a = o[i - bpp], up = b[i], c = b[i - bpp];
            int pa = Math.Abs(up - c), pb = Math.Abs(a - c), pc = Math.Abs(a + up - 2 * c);
            int pred = pb < pa ? (pc < pb ? c : up) : (pc < pa ? c : a);
            o[i] = (byte)(x[i] + pred);
        }
    }

    /// <summary>Paeth for 3- and 4-byte pixels: the channels of one pixel go through 16-bit lanes together.</summary>
    private static unsafe void PaethVector(byte* x, byte* o, byte* b, int n, int bpp)
    {
        var a = Vector128<short>.Zero;
        var c = Vector128<short>.Zero;
        for (int i = 0; i < n; i += bpp)
        {
            var up = Vector128.WidenLower(Vector128.CreateScalar(*(uint*)(b + i)).AsByte()).AsInt16();
            var filt = Vector128.WidenLower(Vector128.CreateScalar(*(uint*)(x + i)).AsByte()).AsInt16();
            var pa = Vector128.Abs(up - c);
            var pb = Vector128.Abs(a - c);
            var pc = Vector128.Abs(up - c + a - c);
            // a if pa <= pb and pa <= pc, else b if pb <= pc, else c (the PNG spec's tie order).
            var useA = Vector128.LessThanOrEqual(pa, pb) & Vector128.LessThanOrEqual(pa, pc);
            var useB = Vector128.LessThanOrEqual(pb, pc);
            var pred = Vector128.ConditionalSelect(useA, a, Vector128.ConditionalSelect(useB, up, c));
            a = (filt + pred) & Vector128.Create((short)0xFF);
            *(uint*)(o + i) = Vector128.Narrow(a.AsUInt16(), a.AsUInt16()).AsUInt32().ToScalar();
            c = up;
        }
    }

    /// <summary>Converts one unfiltered row of <paramref name="count"/> pixels, writing pixel i at <c>start + i·step</c>.</summary>
    private static void ConvertRow(ReadOnlySpan<byte> raw, int count, int colorType, int bitDepth, byte[]? lut,
                                   byte[] dst, int outChannels, long start, int step)
    {
        int o = (int)start;
        if (bitDepth < 8)
        {
            int perByte = 8 / bitDepth, mask = (1 << bitDepth) - 1;
            for (int i = 0; i < count; i++, o += step)
            {
                int shift = 8 - bitDepth * (i % perByte + 1);
                int v = (raw[i / perByte] >> shift) & mask;
                WriteIndexed(v, colorType, lut, dst, o, outChannels);
            }
            return;
        }
        switch (colorType, bitDepth)
        {
            case (0, 8):
            case (3, 8):
                for (int i = 0; i < count; i++, o += step) WriteIndexed(raw[i], colorType, lut, dst, o, outChannels);
                break;
            case (0, 16):
                // Pillow opens 16-bit grey as mode I; I → RGB clips to [0, 255].
                for (int i = 0; i < count; i++, o += step)
                    dst[o] = dst[o + 1] = dst[o + 2] = raw[2 * i] != 0 ? (byte)255 : raw[2 * i + 1];
                break;
            case (2, 8):
                if (step == 3)
                    raw[..(3 * count)].CopyTo(dst.AsSpan(o));
                else
                    for (int i = 0; i < count; i++, o += step) { dst[o] = raw[3 * i]; dst[o + 1] = raw[3 * i + 1]; dst[o + 2] = raw[3 * i + 2]; }
                break;
            case (2, 16):
                for (int i = 0; i < count; i++, o += step) { dst[o] = raw[6 * i]; dst[o + 1] = raw[6 * i + 2]; dst[o + 2] = raw[6 * i + 4]; }
                break;
            case (4, 8):
                for (int i = 0; i < count; i++, o += step) dst[o] = dst[o + 1] = dst[o + 2] = raw[2 * i];
                break;
            case (4, 16):
                for (int i = 0; i < count; i++, o += step) dst[o] = dst[o + 1] = dst[o + 2] = raw[4 * i];
                break;
            case (6, 8):
                for (int i = 0; i < count; i++, o += step) { dst[o] = raw[4 * i]; dst[o + 1] = raw[4 * i + 1]; dst[o + 2] = raw[4 * i + 2]; }
                break;
            case (6, 16):
                for (int i = 0; i < count; i++, o += step) { dst[o] = raw[8 * i]; dst[o + 1] = raw[8 * i + 2]; dst[o + 2] = raw[8 * i + 4]; }
                break;
        }
    }

    private static void WriteIndexed(int v, int colorType, byte[]? lut, byte[] dst, int o, int outChannels)
    {
        if (outChannels == 1)
        {
            dst[o] = lut != null ? lut[v] : (byte)v;
        }
        else if (colorType == 3)
        {
            dst[o] = lut![3 * v];
            dst[o + 1] = lut[3 * v + 1];
            dst[o + 2] = lut[3 * v + 2];
        }
        else
        {
            dst[o] = dst[o + 1] = dst[o + 2] = lut != null ? lut[v] : (byte)v;
        }
    }

    /// <summary>A read-only stream over the IDAT chunk bodies, so zlib sees one continuous stream without a copy.</summary>
    private sealed class ChunkStream(byte[] data, List<(int Offset, int Length)> chunks, long length) : Stream
    {
        private int _chunk, _inChunk;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int total = 0;
            while (buffer.Length > 0 && _chunk < chunks.Count)
            {
                var (off, len) = chunks[_chunk];
                int n = Math.Min(buffer.Length, len - _inChunk);
                data.AsSpan(off + _inChunk, n).CopyTo(buffer);
                buffer = buffer[n..];
                total += n;
                _inChunk += n;
                if (_inChunk == len) { _chunk++; _inChunk = 0; }
            }
            return total;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
