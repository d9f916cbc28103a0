using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Processing;

/// <summary>Decoding against Pillow 9.4's <c>Image.open(f).convert("RGB")</c> for every colour mode, bit depth and format in <c>test/fixtures/pillow/decode</c>.</summary>
public class ImageDecoderTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.EnumerateFiles(PillowFixtures.PathOf("decode")).Select(Path.GetFileName).Order()) data.Add(f!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void MatchesPillowConvertRgb(string file)
    {
        var expected = PillowFixtures.Decode["rgb." + file];
        var image = ImageDecoder.Decode(PillowFixtures.PathOf(Path.Combine("decode", file)));
        Assert.Equal(expected.Shape[0], image.Height);
        Assert.Equal(expected.Shape[1], image.Width);
        Assert.Null(PillowFixtures.FirstDifference(expected.Data, image.Pixels, image.Width, 3));
    }

    [Theory]
    [InlineData("photo_exif6.jpg", 6)]
    [InlineData("photo_exif3.jpg", 3)]
    [InlineData("rgb8_exif6.png", 6)]
    public void ExifOrientationIsOffByDefaultAndMatchesExifTransposeWhenOn(string file, int orientation)
    {
        string path = PillowFixtures.PathOf(Path.Combine("decode", file));
        var raw = ImageDecoder.Decode(path);
        Assert.Equal(PillowFixtures.Decode["rgb." + file].Data, raw.Pixels);

        var expected = PillowFixtures.Decode["exif_transposed." + file];
        var turned = ImageDecoder.Decode(path, new ImageDecoderOptions { ApplyExifOrientation = true });
        Assert.Equal(expected.Shape[0], turned.Height);
        Assert.Equal(expected.Shape[1], turned.Width);
        Assert.Null(PillowFixtures.FirstDifference(expected.Data, turned.Pixels, turned.Width, 3));
        if (orientation >= 5) Assert.Equal((raw.Width, raw.Height), (turned.Height, turned.Width));
    }

    [Fact]
    public void EveryOrientationMatchesItsDefinition()
    {
        // 3x2 image, pixel value = 10*y + x in every channel.
        byte[] px = [0, 1, 2, 10, 11, 12];
        string Apply(int o)
        {
            var (w, h, p) = Exif.Apply(o, 3, 2, px, 1);
            return $"{w}x{h}:" + string.Join(",", p);
        }
        Assert.Equal("3x2:0,1,2,10,11,12", Apply(1));
        Assert.Equal("3x2:2,1,0,12,11,10", Apply(2));   // mirror
        Assert.Equal("3x2:12,11,10,2,1,0", Apply(3));   // rotate 180
        Assert.Equal("3x2:10,11,12,0,1,2", Apply(4));   // flip vertical
        Assert.Equal("2x3:0,10,1,11,2,12", Apply(5));   // transpose
        Assert.Equal("2x3:10,0,11,1,12,2", Apply(6));   // rotate 90 clockwise
        Assert.Equal("2x3:12,2,11,1,10,0", Apply(7));   // transverse
        Assert.Equal("2x3:2,12,1,11,0,10", Apply(8));   // rotate 90 counter-clockwise
    }

    [Fact]
    public void BytesStreamAndPathGiveTheSamePixels()
    {
        string path = Fixtures.Preproc("chelsea.png");
        var a = ImageDecoder.Decode(path);
        var b = ImageDecoder.Decode(File.ReadAllBytes(path), "chelsea");
        using var fs = File.OpenRead(path);
        var c = ImageDecoder.Decode(fs, "chelsea");
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(a.Pixels, c.Pixels);
        Assert.Equal((451, 300), (a.Width, a.Height));
    }

    [Fact]
    public void MLImageOfAnOpaqueImageGivesTheSamePixels()
    {
        string path = PillowFixtures.PathOf(Path.Combine("decode", "rgb8.png"));
        using var ml = Microsoft.ML.Data.MLImage.CreateFromFile(path);
        var fromMl = ImageDecoder.Decode(ml);
        Assert.Equal(PillowFixtures.Decode["rgb.rgb8.png"].Data, fromMl.Pixels);
    }

    [Fact]
    public void LabelMapsKeepRawValuesAndPaletteIndices()
    {
        var seg = ImageDecoder.DecodeLabelMap(Fixtures.Preproc("seg_b.png"));
        Assert.Equal((80, 64), (seg.Width, seg.Height));
        Assert.Equal(ImageDecoder.Decode(Fixtures.Preproc("seg_b.png")).Pixels.Where((_, i) => i % 3 == 0), seg.Labels);

        // A palette PNG as a label map gives indices; as an image it gives palette colours.
        string pal = PillowFixtures.PathOf(Path.Combine("decode", "pal8.png"));
        var indices = ImageDecoder.DecodeLabelMap(pal);
        var colours = ImageDecoder.Decode(pal);
        Assert.NotEqual(indices.Labels, colours.Pixels.Where((_, i) => i % 3 == 0));

        var e = Assert.Throws<ImageDecodingException>(() => ImageDecoder.DecodeLabelMap(PillowFixtures.PathOf(Path.Combine("decode", "rgb8.png"))));
        Assert.Equal(ImageDecodingError.Unsupported, e.Error);
    }
}
