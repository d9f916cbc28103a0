namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Our own decoder for a GIF's first frame, because SkiaSharp blanks transparent pixels while Pillow keeps the palette
/// colour of the transparent index. Follows Pillow 9.4's <c>GifImagePlugin</c>: the canvas is the logical screen
/// (grown to fit the frame), filled with the transparent index if the frame has one and index 0 otherwise; the frame's
/// indices are LZW-decoded (interlaced rows reordered) into their rectangle; <c>convert("RGB")</c> then looks indices
/// up in the local palette, else the global one, else reads them as grey, entries past the palette being Pillow's grey
/// ramp. A data stream that ends early leaves the rest of the canvas as filled, as Pillow does.
/// </summary>
internal static class GifDecoder
{
    public sealed record Result(int Width, int Height, byte[] Pixels);

    public static Result Decode(byte[] data, string source, ImageDecoderOptions options, bool labels)
    {
        var r = new Reader(data, source);
        r.Skip(6); // GIF87a / GIF89a
        int width = r.U16(), height = r.U16();
        int flags = r.U8();
        r.Skip(2); // background index, aspect ratio
        byte[]? globalPalette = (flags & 0x80) != 0 ? r.Bytes(3 << ((flags & 7) + 1)) : null;

        int? transparency = null;
        while (true)
        {
            int b = r.U8();
            if (b == 0x3B) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, "the GIF has no image.");
            if (b == 0x21)
            {
                int label = r.U8();
                var block = r.SubBlock();
                if (label == 0xF9 && block.Length >= 4 && (block[0] & 1) != 0) transparency = block[3];
                while (r.SubBlock().Length > 0) { }
                continue;
            }
            if (b != 0x2C) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"unexpected GIF block 0x{b:X2}.");
            break;
        }

        int x0 = r.U16(), y0 = r.U16(), fw = r.U16(), fh = r.U16();
        int frameFlags = r.U8();
        bool interlaced = (frameFlags & 0x40) != 0;
        byte[]? localPalette = (frameFlags & 0x80) != 0 ? r.Bytes(3 << ((frameFlags & 7) + 1)) : null;
        // Pillow grows the canvas to hold a frame that overhangs the logical screen.
        width = Math.Max(width, x0 + fw);
        height = Math.Max(height, y0 + fh);
        if (width == 0 || height == 0) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"invalid size {width}x{height}.");
        ImageDecoder.CheckSize(source, width, height, options);

        var indices = new byte[(long)width * height];
        if (transparency is { } t) indices.AsSpan().Fill((byte)t);
        int minCodeSize = r.U8();
        if (minCodeSize is < 1 or > 11) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"invalid LZW code size {minCodeSize}.");
        Lzw(r, minCodeSize, indices, width, x0, y0, fw, fh, interlaced, source);

        if (labels) return new Result(width, height, indices);
        byte[]? palette = localPalette ?? globalPalette;
        if (palette != null && IsGreyIdentity(palette)) palette = null; // Pillow opens these as mode L
        var lut = new byte[256 * 3];
        for (int i = 0; i < 256; i++) lut[3 * i] = lut[3 * i + 1] = lut[3 * i + 2] = (byte)i;
        palette?.AsSpan(0, Math.Min(palette.Length, 768)).CopyTo(lut);
        var rgb = new byte[indices.LongLength * 3];
        for (long i = 0; i < indices.LongLength; i++)
        {
            int v = indices[i] * 3;
            rgb[3 * i] = lut[v];
            rgb[3 * i + 1] = lut[v + 1];
            rgb[3 * i + 2] = lut[v + 2];
        }
        return new Result(width, height, rgb);
    }

    private static bool IsGreyIdentity(byte[] p)
    {
        for (int i = 0; i < p.Length / 3; i++)
            if (p[3 * i] != i || p[3 * i + 1] != i || p[3 * i + 2] != i) return false;
        return true;
    }

    /// <summary>Variable-length-code LZW as GIF uses it (codes up to 12 bits, clear and end codes, deferred clear).</summary>
    private static void Lzw(Reader r, int minCodeSize, byte[] canvas, int width, int x0, int y0, int fw, int fh, bool interlaced, string source)
    {
        int clear = 1 << minCodeSize, end = clear + 1;
        var prefix = new short[4096];
        var suffix = new byte[4096];
        var stack = new byte[4097];
        int codeSize = minCodeSize + 1, next = clear + 2, prev = -1;
        byte firstOfPrev = 0;
        int bitBuffer = 0, bits = 0;
        long written = 0, total = (long)fw * fh;
        int row = 0, col = 0, pass = 0, rowStep = interlaced ? 8 : 1;
        int y = 0;
        ReadOnlySpan<byte> block = r.SubBlock();
        int blockPos = 0;

        void Emit(byte v)
        {
            if (written >= total) return;
            canvas[(long)(y0 + y) * width + x0 + col] = v;
            written++;
            if (++col < fw) return;
            col = 0;
            row++;
            if (!interlaced) { y = row; return; }
            y += rowStep;
            while (y >= fh && pass < 3)
            {
                pass++;
                (y, rowStep) = pass switch { 1 => (4, 8), 2 => (2, 4), _ => (1, 2) };
            }
        }

        while (written < total)
        {
            while (bits < codeSize)
            {
                if (blockPos == block.Length)
                {
                    if (block.Length == 0)
                        throw new ImageDecodingException(source, ImageDecodingError.Truncated, $"the GIF image data stops after {written} of {total} pixels.");
                    block = r.SubBlock();
                    blockPos = 0;
                    continue;
                }
                bitBuffer |= block[blockPos++] << bits;
                bits += 8;
            }
            int code = bitBuffer & ((1 << codeSize) - 1);
            bitBuffer >>= codeSize;
            bits -= codeSize;

            if (code == clear)
            {
                codeSize = minCodeSize + 1;
                next = clear + 2;
                prev = -1;
                continue;
            }
            if (code == end) break;
            int sp = 0, c = code;
            if (prev < 0)
            {
                if (code >= clear) throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"invalid first LZW code {code}.");
                firstOfPrev = (byte)code;
                Emit((byte)code);
                prev = code;
                continue;
            }
            if (code > next || (code == next && next >= 4096))
                throw new ImageDecodingException(source, ImageDecodingError.Corrupt, $"invalid LZW code {code}.");
            if (code == next)
            {
                stack[sp++] = firstOfPrev;
                c = prev;
            }
            while (c >= clear)
            {
                stack[sp++] = suffix[c];
                c = prefix[c];
            }
            stack[sp++] = (byte)c;
            firstOfPrev = (byte)c;
            while (sp > 0) Emit(stack[--sp]);
            if (next < 4096)
            {
                prefix[next] = (short)prev;
                suffix[next] = firstOfPrev;
                next++;
                if (next == 1 << codeSize && codeSize < 12) codeSize++;
            }
            prev = code;
        }
    }

    private ref struct Reader(byte[] data, string source)
    {
        private int _pos;

        public int U8()
        {
            if (_pos >= data.Length) throw Truncated();
            return data[_pos++];
        }

        public int U16() => U8() | (U8() << 8);

        public void Skip(int n)
        {
            if (data.Length - _pos < n) throw Truncated();
            _pos += n;
        }

        public byte[] Bytes(int n)
        {
            if (data.Length - _pos < n) throw Truncated();
            var b = data.AsSpan(_pos, n).ToArray();
            _pos += n;
            return b;
        }

        /// <summary>One data sub-block (length byte, then data); empty at a block terminator.</summary>
        public ReadOnlySpan<byte> SubBlock()
        {
            int n = U8();
            if (data.Length - _pos < n) throw Truncated();
            var s = data.AsSpan(_pos, n);
            _pos += n;
            return s;
        }

        private readonly ImageDecodingException Truncated() =>
            new(source, ImageDecodingError.Truncated, $"the GIF ends at byte {_pos} of {data.Length}.");
    }
}
