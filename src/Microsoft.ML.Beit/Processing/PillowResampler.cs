using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Pillow's <c>Image.resize</c> for 8-bit images, reproduced bit for bit (Pillow ≥ 9.4, <c>reducing_gap=None</c>,
/// no box): a separable two-pass convolution, horizontal pass first, with weights normalised to sum 1, converted to
/// fixed point with 22 fractional bits, accumulated from 2^21 and shifted back, and the intermediate image rounded
/// and clipped to uint8. NEAREST uses Pillow's affine nearest-neighbour scaling instead. An axis whose size is
/// unchanged is not filtered, and an image whose size is unchanged is copied.
/// </summary>
/// <remarks>
/// Mirrors <c>src/libImaging/Resample.c</c> (<c>precompute_coeffs</c>, <c>normalize_coeffs_8bpc</c>,
/// <c>ImagingResampleInner</c>) and <c>Geometry.c</c> (<c>ImagingScaleAffine</c>). Coefficient tables are cached per
/// (input size, output size, filter), so resizing many images of one size computes them once.
/// </remarks>
public static class PillowResampler
{
    private const int PrecisionBits = 32 - 8 - 2;
    private const int Half = 1 << (PrecisionBits - 1);
    private const int MaxCachedTables = 256;

    private static readonly ConcurrentDictionary<(int In, int Out, PillowResample Filter), Coefficients> s_cache = new();

    /// <summary>Resizes an RGB image to <paramref name="size"/> as Pillow does.</summary>
    public static RgbImage Resize(RgbImage image, PixelSize size, PillowResample filter)
    {
        ArgumentNullException.ThrowIfNull(image);
        var result = new RgbImage(size);
        Resize(image.Pixels, image.Size, 3, result.Pixels, size, filter);
        return result;
    }

    /// <summary>
    /// Resizes interleaved 8-bit pixels with 1 to 4 channels (each channel is filtered independently, as Pillow does
    /// for L, RGB and RGBX; note that Pillow premultiplies RGBA and LA by alpha first, which this method does not).
    /// </summary>
    /// <param name="source">Source pixels, <c>[height, width, channels]</c>.</param>
    /// <param name="size">Source height and width.</param>
    /// <param name="channels">Channels per pixel, 1 to 4.</param>
    /// <param name="destination">Receives <c>[newHeight, newWidth, channels]</c> pixels.</param>
    /// <param name="newSize">Output height and width.</param>
    /// <param name="filter">The Pillow filter.</param>
    public static void Resize(ReadOnlySpan<byte> source, PixelSize size, int channels,
                              Span<byte> destination, PixelSize newSize, PillowResample filter)
    {
        int width = size.Width, height = size.Height, newWidth = newSize.Width, newHeight = newSize.Height;
        if (channels is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(channels), channels, "Channels must be 1 to 4.");
        if (width <= 0 || height <= 0) throw new ArgumentException($"Source dimensions must be positive, got {width}x{height}.");
        if (newWidth <= 0 || newHeight <= 0) throw new ArgumentException($"Output dimensions must be positive, got {newWidth}x{newHeight}.");
        if (source.Length < (long)width * height * channels) throw new ArgumentException("The source is smaller than width·height·channels.", nameof(source));
        if (destination.Length < (long)newWidth * newHeight * channels) throw new ArgumentException("The destination is smaller than newWidth·newHeight·channels.", nameof(destination));
        if (!Enum.IsDefined(filter)) throw new ArgumentOutOfRangeException(nameof(filter), filter, "Unknown Pillow filter.");

        ResizeRegion(source, width, height, channels, newWidth, newHeight, filter, 0, 0, newWidth, newHeight, destination);
    }

    /// <summary>
    /// Computes only the window <c>[regionX, regionX+regionWidth) × [regionY, regionY+regionHeight)</c> of the image
    /// <see cref="Resize(ReadOnlySpan{byte}, PixelSize, int, Span{byte}, PixelSize, PillowResample)"/> would produce
    /// (every output pixel depends only on its own coefficients, so the window is bit-identical to a crop of the full
    /// result). Used to fuse resize and center crop. Arguments are validated by the caller.
    /// </summary>
    internal static void ResizeRegion(ReadOnlySpan<byte> source, int width, int height, int channels,
                                      int newWidth, int newHeight, PillowResample filter,
                                      int regionX, int regionY, int regionWidth, int regionHeight, Span<byte> destination)
    {
        int outStride = regionWidth * channels, inStride = width * channels;
        if (filter == PillowResample.Nearest || (width == newWidth && height == newHeight))
        {
            // Pillow copies an image whose size is unchanged; NEAREST goes through its affine scaler.
            var xin = filter == PillowResample.Nearest ? NearestTable(width, newWidth) : null;
            var yin = filter == PillowResample.Nearest ? NearestTable(height, newHeight) : null;
            for (int y = 0; y < regionHeight; y++)
            {
                int sy = yin != null ? yin[regionY + y] : regionY + y;
                var srcRow = source.Slice(sy * inStride, inStride);
                var dstRow = destination.Slice(y * outStride, outStride);
                if (xin == null)
                {
                    srcRow.Slice(regionX * channels, outStride).CopyTo(dstRow);
                    continue;
                }
                for (int x = 0, o = 0; x < regionWidth; x++, o += channels)
                {
                    int s = xin[regionX + x] * channels;
                    for (int c = 0; c < channels; c++) dstRow[o + c] = srcRow[s + c];
                }
            }
            return;
        }

        bool horizontal = newWidth != width, vertical = newHeight != height;
        var vert = vertical ? GetCoefficients(height, newHeight, filter) : null;
        if (!horizontal)
        {
            VerticalPass(source, inStride, regionX * channels, outStride, vert!, regionY, regionHeight, 0, destination);
            return;
        }
        var horiz = GetCoefficients(width, newWidth, filter);
        if (!vertical)
        {
            HorizontalPass(source, width, channels, horiz, regionX, regionWidth, regionY, regionHeight, destination);
            return;
        }
        // Only the source rows the vertical pass reads are filtered horizontally (Pillow's ybox_first..ybox_last,
        // narrowed to the window's rows).
        int last = regionY + regionHeight - 1;
        int first = vert!.Bounds[2 * regionY];
        int end = vert.Bounds[2 * last] + vert.Bounds[2 * last + 1];
        int tempLength = outStride * (end - first);
        byte[] temp = ArrayPool<byte>.Shared.Rent(tempLength);
        try
        {
            HorizontalPass(source, width, channels, horiz, regionX, regionWidth, first, end - first, temp);
            VerticalPass(temp.AsSpan(0, tempLength), outStride, 0, outStride, vert, regionY, regionHeight, first, destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(temp);
        }
    }

    /// <summary>Fixed-point weights of one axis: for output index i, taps start at <c>Bounds[2i]</c>, count <c>Bounds[2i+1]</c>, weights at <c>Weights[i·KSize]</c>.</summary>
    internal sealed class Coefficients(int ksize, int[] bounds, int[] weights)
    {
        private int[]? _rgbPairs;

        public int KSize { get; } = ksize;
        public int[] Bounds { get; } = bounds;
        public int[] Weights { get; } = weights;

        /// <summary>Taps grouped in pairs for the SIMD RGB horizontal pass.</summary>
        public int PairsPerOutput => (KSize + 1) / 2;

        /// <summary>
        /// For the AVX2 RGB horizontal pass: per output pixel and tap pair j, 8 ints
        /// <c>[w(2j) ×3, w(2j+1) ×3, 0, 0]</c>, matching 8 source bytes <c>R G B R G B · ·</c> widened to ints.
        /// </summary>
        public int[] RgbPairs => _rgbPairs ??= BuildRgbPairs();

        private int[] BuildRgbPairs()
        {
            int outSize = Bounds.Length / 2, pairs = PairsPerOutput;
            var t = new int[outSize * pairs * 8];
            for (int xx = 0; xx < outSize; xx++)
            {
                for (int j = 0; j < pairs; j++)
                {
                    int w0 = Weights[xx * KSize + 2 * j];
                    int w1 = 2 * j + 1 < KSize ? Weights[xx * KSize + 2 * j + 1] : 0;
                    int o = (xx * pairs + j) * 8;
                    t[o] = t[o + 1] = t[o + 2] = w0;
                    t[o + 3] = t[o + 4] = t[o + 5] = w1;
                }
            }
            return t;
        }
    }

    internal static Coefficients GetCoefficients(int inSize, int outSize, PillowResample filter)
    {
        var key = (inSize, outSize, filter);
        if (s_cache.TryGetValue(key, out var c)) return c;
        c = ComputeCoefficients(inSize, outSize, filter);
        if (s_cache.Count >= MaxCachedTables) s_cache.Clear();
        s_cache[key] = c;
        return c;
    }

    private static double Support(PillowResample filter) => filter switch
    {
        PillowResample.Box => 0.5,
        PillowResample.Bilinear or PillowResample.Hamming => 1.0,
        PillowResample.Bicubic => 2.0,
        PillowResample.Lanczos => 3.0,
        _ => throw new ArgumentOutOfRangeException(nameof(filter)),
    };

    private static double Kernel(PillowResample filter, double x)
    {
        switch (filter)
        {
            case PillowResample.Box:
                return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
            case PillowResample.Bilinear:
                if (x < 0.0) x = -x;
                return x < 1.0 ? 1.0 - x : 0.0;
            case PillowResample.Hamming:
                if (x < 0.0) x = -x;
                if (x == 0.0) return 1.0;
                if (x >= 1.0) return 0.0;
                x *= Math.PI;
                // Pillow writes the window constants as C floats (0.54f, 0.46f), promoted to double.
                return Math.Sin(x) / x * ((double)0.54f + (double)0.46f * Math.Cos(x));
            case PillowResample.Bicubic:
                const double a = -0.5;
                if (x < 0.0) x = -x;
                if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
                return 0.0;
            case PillowResample.Lanczos:
                return -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;
            default:
                throw new ArgumentOutOfRangeException(nameof(filter));
        }
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    /// <summary>Pillow's <c>precompute_coeffs</c> followed by <c>normalize_coeffs_8bpc</c>, in the same double arithmetic.</summary>
    internal static Coefficients ComputeCoefficients(int inSize, int outSize, PillowResample filter)
    {
        // Pillow passes the box as floats: (float)inSize - 0f, then divides in double.
        double scale = (double)((float)inSize - 0f) / outSize;
        double filterscale = scale < 1.0 ? 1.0 : scale;
        double support = Support(filter) * filterscale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = 0.0 + (xx + 0.5) * scale;
            double ww = 0.0, ss = 1.0 / filterscale;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            for (int x = 0; x < xmax; x++)
            {
                double w = Kernel(filter, (x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                if (ww != 0.0) k[x] /= ww;
                double v = k[x] * (1 << PrecisionBits);
                weights[xx * ksize + x] = k[x] < 0 ? (int)(-0.5 + v) : (int)(0.5 + v);
            }
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = xmax;
        }
        return new Coefficients(ksize, bounds, weights);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Clip8(int ss)
    {
        int v = ss >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>
    /// Filters <paramref name="rows"/> source rows starting at <paramref name="firstRow"/> along x, producing output
    /// columns <c>[outStart, outStart+outWidth)</c>.
    /// </summary>
    private static unsafe void HorizontalPass(ReadOnlySpan<byte> source, int width, int channels, Coefficients c,
                                              int outStart, int outWidth, int firstRow, int rows, Span<byte> destination)
    {
        int ksize = c.KSize;
        int inStride = width * channels, outStride = outWidth * channels;
        fixed (byte* src0 = source)
        fixed (byte* dst0 = destination)
        fixed (int* bounds0 = c.Bounds)
        fixed (int* kk0 = c.Weights)
        {
            int* bounds = bounds0 + 2 * outStart;
            int* kk = kk0 + outStart * ksize;
            for (int yy = 0; yy < rows; yy++)
            {
                byte* srcRow = src0 + (long)(yy + firstRow) * inStride;
                byte* dst = dst0 + (long)yy * outStride;
                switch (channels)
                {
                    case 3 when Avx2.IsSupported:
                    {
                        // Two taps per step: 8 source bytes (two RGB pixels and two spare bytes) widened to ints and
                        // multiplied by [w,w,w,w',w',w',0,0]. Integer sums are exact in any order, so this is Pillow's
                        // result. A pixel whose 8-byte reads would pass the end of the source buffer goes scalar.
                        long available = source.Length - (long)(yy + firstRow) * inStride;
                        int pairs = c.PairsPerOutput;
                        fixed (int* table0 = c.RgbPairs)
                        {
                            int* table = table0 + outStart * pairs * 8;
                            var gather = Vector256.Create(3, 4, 5, 0, 0, 0, 0, 0);
                            var half = Vector128.Create(Half);
                            for (int xx = 0; xx < outWidth; xx++, dst += 3)
                            {
                                int xmin = bounds[2 * xx], n = bounds[2 * xx + 1], np = (n + 1) >> 1;
                                byte* p = srcRow + xmin * 3;
                                if (xmin * 3L + 6L * np + 2 > available)
                                {
                                    HorizontalPixel3(p, kk + xx * ksize, n, dst);
                                    continue;
                                }
                                int* w = table + xx * pairs * 8;
                                var acc = Vector256<int>.Zero;
                                for (int j = 0; j < np; j++)
                                    acc = Avx2.Add(acc, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 6 * j), Avx.LoadVector256(w + 8 * j)));
                                acc = Avx2.Add(acc, Avx2.PermuteVar8x32(acc, gather));
                                var sum = Sse2.ShiftRightArithmetic(Sse2.Add(acc.GetLower(), half), PrecisionBits);
                                var packed = Sse2.PackUnsignedSaturate(Sse2.PackSignedSaturate(sum, sum), Sse2.PackSignedSaturate(sum, sum)).AsUInt32().ToScalar();
                                dst[0] = (byte)packed;
                                dst[1] = (byte)(packed >> 8);
                                dst[2] = (byte)(packed >> 16);
                            }
                        }
                        break;
                    }
                    case 3:
                        for (int xx = 0; xx < outWidth; xx++, dst += 3)
                            HorizontalPixel3(srcRow + bounds[2 * xx] * 3, kk + xx * ksize, bounds[2 * xx + 1], dst);
                        break;
                    case 1:
                        for (int xx = 0; xx < outWidth; xx++)
                        {
                            int xmin = bounds[2 * xx], n = bounds[2 * xx + 1];
                            int* k = kk + xx * ksize;
                            byte* p = srcRow + xmin;
                            int s0 = Half;
                            for (int x = 0; x < n; x++) s0 += p[x] * k[x];
                            dst[xx] = Clip8(s0);
                        }
                        break;
                    default:
                        for (int xx = 0; xx < outWidth; xx++, dst += channels)
                        {
                            int xmin = bounds[2 * xx], n = bounds[2 * xx + 1];
                            int* k = kk + xx * ksize;
                            for (int ch = 0; ch < channels; ch++)
                            {
                                byte* p = srcRow + xmin * channels + ch;
                                int s = Half;
                                for (int x = 0; x < n; x++, p += channels) s += *p * k[x];
                                dst[ch] = Clip8(s);
                            }
                        }
                        break;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void HorizontalPixel3(byte* p, int* k, int n, byte* dst)
    {
        int s0 = Half, s1 = Half, s2 = Half;
        for (int x = 0; x < n; x++, p += 3)
        {
            int w = k[x];
            s0 += p[0] * w;
            s1 += p[1] * w;
            s2 += p[2] * w;
        }
        dst[0] = Clip8(s0);
        dst[1] = Clip8(s1);
        dst[2] = Clip8(s2);
    }

    /// <summary>
    /// Filters along y, producing output rows <c>[outStart, outStart+outHeight)</c> of <paramref name="rowLength"/>
    /// bytes each. Every byte of a row (all channels alike) uses the same weights, so a row is processed as a flat
    /// vector of samples. The source rows are <paramref name="srcStride"/> apart, start <paramref name="srcColumn"/>
    /// bytes in, and the buffer's first row is source row <paramref name="rowOffset"/>.
    /// </summary>
    private static unsafe void VerticalPass(ReadOnlySpan<byte> source, int srcStride, int srcColumn, int rowLength,
                                            Coefficients c, int outStart, int outHeight, int rowOffset, Span<byte> destination)
    {
        int ksize = c.KSize;
        fixed (byte* src0 = source)
        fixed (byte* dst0 = destination)
        fixed (int* bounds = c.Bounds)
        fixed (int* kk = c.Weights)
        {
            for (int yy = 0; yy < outHeight; yy++)
            {
                int ymin = bounds[2 * (outStart + yy)] - rowOffset, n = bounds[2 * (outStart + yy) + 1];
                int* k = kk + (outStart + yy) * ksize;
                byte* dst = dst0 + (long)yy * rowLength;
                byte* top = src0 + (long)ymin * srcStride + srcColumn;
                int i = 0;
                if (Avx2.IsSupported)
                {
                    var perm = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
                    for (; i <= rowLength - 32; i += 32)
                    {
                        Vector256<int> a0 = Vector256.Create(Half), a1 = a0, a2 = a0, a3 = a0;
                        byte* p = top + i;
                        for (int y = 0; y < n; y++, p += srcStride)
                        {
                            var w = Vector256.Create(k[y]);
                            a0 = Avx2.Add(a0, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p), w));
                            a1 = Avx2.Add(a1, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 8), w));
                            a2 = Avx2.Add(a2, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 16), w));
                            a3 = Avx2.Add(a3, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 24), w));
                        }
                        // >> 22, then saturating packs clip to [0, 255] exactly as Pillow's clip8 table does.
                        var s01 = Avx2.PackSignedSaturate(Avx2.ShiftRightArithmetic(a0, PrecisionBits), Avx2.ShiftRightArithmetic(a1, PrecisionBits));
                        var s23 = Avx2.PackSignedSaturate(Avx2.ShiftRightArithmetic(a2, PrecisionBits), Avx2.ShiftRightArithmetic(a3, PrecisionBits));
                        var bytes = Avx2.PackUnsignedSaturate(s01, s23);
                        // The packs work per 128-bit lane; restore the order of the 4-byte groups.
                        Avx2.PermuteVar8x32(bytes.AsInt32(), perm).AsByte().Store(dst + i);
                    }
                }
                for (; i < rowLength; i++)
                {
                    byte* p = top + i;
                    int s = Half;
                    for (int y = 0; y < n; y++, p += srcStride) s += *p * k[y];
                    dst[i] = Clip8(s);
                }
            }
        }
    }

    /// <summary>Pillow's <c>ImagingScaleAffine</c> positions: they accumulate in double from half a step.</summary>
    private static int[] NearestTable(int inSize, int outSize)
    {
        var table = new int[outSize];
        double step = (double)((float)inSize - 0f) / outSize;
        double pos = 0.0 + step * 0.5;
        for (int i = 0; i < outSize; i++)
        {
            int v = pos < 0.0 ? -1 : (int)pos;
            // Pillow leaves pixels whose position falls outside the source unset; clamping keeps them defined.
            table[i] = Math.Clamp(v, 0, inSize - 1);
            pos += step;
        }
        return table;
    }
}
