using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML.Beit.Processing;
using SkiaSharp;

namespace Beit.Tests.Processing;

/// <summary>Label-map PNGs, overlays and class fractions from a segmenter's label map.</summary>
public class BeitSegmentationRenderingTests
{
    // A 3x4 (height x width) map of 4 classes.
    private static readonly int[] s_map = [0, 0, 1, 1, 0, 2, 2, 1, 3, 3, 3, 3];
    private static readonly PixelSize s_size = new(3, 4);

    [Fact]
    public void ColoursAreThePascalVocColourMap()
    {
        // VOClabelcolormap.m: background, aeroplane, bicycle, bird, person (15), and the 'void' index 255.
        Assert.Equal(((byte)0, (byte)0, (byte)0), BeitSegmentationRendering.ClassColor(0));
        Assert.Equal(((byte)128, (byte)0, (byte)0), BeitSegmentationRendering.ClassColor(1));
        Assert.Equal(((byte)0, (byte)128, (byte)0), BeitSegmentationRendering.ClassColor(2));
        Assert.Equal(((byte)128, (byte)128, (byte)0), BeitSegmentationRendering.ClassColor(3));
        Assert.Equal(((byte)192, (byte)128, (byte)128), BeitSegmentationRendering.ClassColor(15));
        Assert.Equal(((byte)224, (byte)224, (byte)192), BeitSegmentationRendering.ClassColor(255));
        // ADE20K's 150 classes all get distinct colours.
        Assert.Equal(150, Enumerable.Range(0, 150).Select(BeitSegmentationRendering.ClassColor).Distinct().Count());
        Assert.Throws<ArgumentOutOfRangeException>(() => BeitSegmentationRendering.ClassColor(-1));
    }

    [Fact]
    public void LabelMapPngGivesTheIdsBackAndShowsTheColours()
    {
        var png = BeitSegmentationRendering.LabelMapPng(s_map, s_size, classCount: 4);
        var decoded = ImageDecoder.DecodeLabelMap(png, "labels.png");
        Assert.Equal((3, 4), (decoded.Height, decoded.Width));
        Assert.Equal(s_map, decoded.Labels.Select(b => (int)b));
        // An independent decoder (Skia) sees the palette colours.
        using var bitmap = SKBitmap.Decode(png);
        for (int i = 0; i < s_map.Length; i++)
        {
            var c = bitmap.GetPixel(i % 4, i / 4);
            Assert.Equal(BeitSegmentationRendering.ClassColor(s_map[i]), (c.Red, c.Green, c.Blue));
        }
        // Deterministic bytes.
        Assert.Equal(png, BeitSegmentationRendering.LabelMapPng(s_map, s_size, classCount: 4));
    }

    [Fact]
    public void MoreThan256ClassesGiveA16BitGreyPng()
    {
        int[] map = [0, 299, 256, 1, 255, 7];
        var png = BeitSegmentationRendering.LabelMapPng(map, new PixelSize(2, 3), classCount: 300);
        var (width, height, depth, colour, rows) = ReadPng(png);
        Assert.Equal((3, 2, 16, 0), (width, height, depth, colour));
        var values = Enumerable.Range(0, 6).Select(i => (int)BinaryPrimitives.ReadUInt16BigEndian(rows.AsSpan(2 * i))).ToArray();
        Assert.Equal(map, values);
    }

    [Fact]
    public void OverlayBlendsTheClassColoursOverTheImage()
    {
        var pixels = new byte[3 * s_map.Length];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 17 % 256);
        var image = new RgbImage(4, 3, pixels);

        var half = ImageDecoder.Decode(BeitSegmentationRendering.OverlayPng(s_map, s_size, image), "overlay.png");
        Assert.Equal((4, 3), (half.Width, half.Height));
        for (int i = 0; i < s_map.Length; i++)
        {
            var (r, g, b) = BeitSegmentationRendering.ClassColor(s_map[i]);
            Assert.Equal((int)Math.Round((pixels[3 * i] + r) / 2.0, MidpointRounding.AwayFromZero), half.Pixels[3 * i]);
            Assert.Equal((int)Math.Round((pixels[3 * i + 1] + g) / 2.0, MidpointRounding.AwayFromZero), half.Pixels[3 * i + 1]);
            Assert.Equal((int)Math.Round((pixels[3 * i + 2] + b) / 2.0, MidpointRounding.AwayFromZero), half.Pixels[3 * i + 2]);
        }
        Assert.Equal(pixels, ImageDecoder.Decode(BeitSegmentationRendering.OverlayPng(s_map, s_size, image, alpha: 0f)).Pixels);
        var colours = ImageDecoder.Decode(BeitSegmentationRendering.OverlayPng(s_map, s_size)).Pixels;
        Assert.Equal(s_map.SelectMany(c => { var (r, g, b) = BeitSegmentationRendering.ClassColor(c); return new[] { r, g, b }; }), colours);
    }

    [Fact]
    public void ClassFractionsCountPixelsLargestFirst()
    {
        var f = BeitSegmentationRendering.ClassFractions(s_map, ["wall", "floor", "sky", "tree", "unused"]);
        Assert.Equal([(3, "tree", 4L), (0, "wall", 3L), (1, "floor", 3L), (2, "sky", 2L)], f.Select(x => (x.ClassId, x.Label, x.Pixels)));
        Assert.Equal(1.0, f.Sum(x => x.Fraction), 12);
        Assert.Equal(4 / 12.0, f[0].Fraction, 15);
    }

    [Fact]
    public void BadInputIsRejectedWithTheReason()
    {
        Assert.Contains("outside", Assert.Throws<ArgumentException>(() => BeitSegmentationRendering.ClassFractions(s_map, ["a", "b", "c"])).Message);
        Assert.Throws<ArgumentException>(() => BeitSegmentationRendering.ClassFractions([], ["a"]));
        Assert.Contains("outside", Assert.Throws<ArgumentException>(() => BeitSegmentationRendering.LabelMapPng(s_map, s_size, classCount: 3)).Message);
        Assert.Contains("needs 16 labels, got 12", Assert.Throws<ArgumentException>(() => BeitSegmentationRendering.LabelMapPng(s_map, new PixelSize(4, 4), classCount: 4)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => BeitSegmentationRendering.LabelMapPng(s_map, s_size, classCount: 65537));
        Assert.Contains("3x4", Assert.Throws<ArgumentException>(() => BeitSegmentationRendering.OverlayPng(s_map, s_size, new RgbImage(3, 4))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => BeitSegmentationRendering.OverlayPng(s_map, s_size, null, alpha: float.NaN));
        Assert.Throws<ArgumentException>(() => BeitSegmentationRendering.OverlayPng([0, -1], new PixelSize(1, 2)));
    }

    /// <summary>A minimal PNG reader (any filter, no interlace) that returns the unfiltered rows.</summary>
    private static (int Width, int Height, int Depth, int Colour, byte[] Rows) ReadPng(byte[] png)
    {
        int pos = 8, width = 0, height = 0, depth = 0, colour = 0;
        using var idat = new MemoryStream();
        while (pos < png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = System.Text.Encoding.ASCII.GetString(png, pos + 4, 4);
            var body = png.AsSpan(pos + 8, length);
            Assert.Equal(PngCrc.Compute(png.AsSpan(pos + 4, length + 4)), BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + length)));
            if (type == "IHDR") (width, height, depth, colour) = (BinaryPrimitives.ReadInt32BigEndian(body), BinaryPrimitives.ReadInt32BigEndian(body[4..]), body[8], body[9]);
            if (type == "IDAT") idat.Write(body);
            pos += 12 + length;
        }
        int bpp = (colour switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 }) * depth / 8, stride = width * bpp;
        using var z = new ZLibStream(new MemoryStream(idat.ToArray()), CompressionMode.Decompress);
        var raw = new MemoryStream();
        z.CopyTo(raw);
        var data = raw.ToArray();
        var rows = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            int filter = data[y * (stride + 1)];
            for (int x = 0; x < stride; x++)
            {
                int a = x >= bpp ? rows[y * stride + x - bpp] : 0, b = y > 0 ? rows[(y - 1) * stride + x] : 0, c = x >= bpp && y > 0 ? rows[(y - 1) * stride + x - bpp] : 0;
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                int predictor = filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => pa <= pb && pa <= pc ? a : pb <= pc ? b : c };
                rows[y * stride + x] = (byte)(data[y * (stride + 1) + 1 + x] + predictor);
            }
        }
        return (width, height, depth, colour, rows);
    }
}
