using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Processing;

/// <summary>Every kind of bad input gives an <see cref="ImageDecodingException"/> that names the source and says why; nothing crashes.</summary>
public class BadImageInputTests
{
    private static byte[] Fixture(string file) => File.ReadAllBytes(PillowFixtures.PathOf(Path.Combine("decode", file)));

    private static ImageDecodingException Fails(byte[] data, string name, ImageDecoderOptions? options = null)
    {
        var e = Assert.Throws<ImageDecodingException>(() => ImageDecoder.Decode(data, name, options));
        Assert.Equal(name, e.SourceName);
        Assert.Contains(name, e.Message);
        return e;
    }

    [Fact]
    public void ZeroBytes() => Assert.Equal(ImageDecodingError.Empty, Fails([], "empty.png").Error);

    [Fact]
    public void NotAnImage()
    {
        Assert.Equal(ImageDecodingError.NotAnImage, Fails("hello, world, this is text"u8.ToArray(), "notes.txt").Error);
        Assert.Equal(ImageDecodingError.NotAnImage, Fails(File.ReadAllBytes(Fixtures.Preproc("seed_defaults_256_crop224_bicubic.safetensors"))[..4096], "x.safetensors").Error);
    }

    [Theory]
    [InlineData("rgb8.png")]
    [InlineData("rgb8_adam7.png")]
    [InlineData("photo_q90.jpg")]
    [InlineData("photo_progressive.jpg")]
    [InlineData("photo.gif")]
    [InlineData("odd_rgb24.bmp")]
    [InlineData("photo_lossless.webp")]
    [InlineData("photo_lossy.webp")]
    public void TruncatedAnywhere(string file)
    {
        var data = Fixture(file);
        // Cut inside the signature, the header, the middle and the last data bytes: always a typed error.
        foreach (int cut in new[] { 3, 20, data.Length / 2, data.Length - 16 })
        {
            var e = Fails(data[..cut], file);
            Assert.True(e.Error is ImageDecodingError.Truncated or ImageDecodingError.Corrupt, $"{file} cut at {cut}: {e.Error}");
        }
        Assert.Equal(ImageDecodingError.Truncated, Fails(data[..(data.Length / 2)], file).Error);
    }

    [Fact]
    public void CorruptPng()
    {
        var data = Fixture("rgb8.png");
        var badCrc = (byte[])data.Clone();
        badCrc[20] ^= 0xFF; // inside IHDR: its CRC no longer matches
        Assert.Equal(ImageDecodingError.Corrupt, Fails(badCrc, "crc.png").Error);

        var badZlib = (byte[])data.Clone();
        int idat = IndexOf(data, "IDAT"u8) + 4;
        for (int i = 2; i < 40; i++) badZlib[idat + i] ^= 0x5A;
        var e = Fails(badZlib, "zlib.png");
        Assert.True(e.Error is ImageDecodingError.Corrupt or ImageDecodingError.Truncated, e.Error.ToString());

        var badHeader = (byte[])data.Clone();
        badHeader[24] = 7; // bit depth 7
        FixCrc(badHeader, 12, 17);
        Assert.Equal(ImageDecodingError.Corrupt, Fails(badHeader, "depth.png").Error);
    }

    [Fact]
    public void CorruptJpegGifAndWebP()
    {
        var jpeg = Fixture("photo_q90.jpg");
        for (int i = 200; i < jpeg.Length - 2; i += 3) jpeg[i] = 0xFF;
        var e = Record.Exception(() => ImageDecoder.Decode(jpeg, "garbage.jpg"));
        // libjpeg may recover from damaged entropy data; if it does not, the error is typed.
        Assert.True(e is null or ImageDecodingException { SourceName: "garbage.jpg" }, e?.ToString());

        var gif = Fixture("photo.gif");
        var badGif = gif[..(IndexOf(gif, [0x2C]) + 10)].Concat(new byte[] { 8, 3, 0xFF, 0xFF, 0xFF, 0 }).ToArray();
        Assert.True(Fails(badGif, "lzw.gif").Error is ImageDecodingError.Corrupt or ImageDecodingError.Truncated);

        var webp = Fixture("photo_lossy.webp");
        for (int i = 40; i < webp.Length; i++) webp[i] ^= 0xA5;
        e = Record.Exception(() => ImageDecoder.Decode(webp, "garbage.webp"));
        Assert.True(e is null or ImageDecodingException { SourceName: "garbage.webp" }, e?.ToString());
    }

    [Theory]
    [InlineData("rgb8.png")]
    [InlineData("photo_q90.jpg")]
    [InlineData("photo.gif")]
    [InlineData("odd_rgb24.bmp")]
    [InlineData("photo_lossy.webp")]
    public void OversizedIsRefusedBeforeDecoding(string file)
    {
        var e = Fails(Fixture(file), file, new ImageDecoderOptions { MaxPixels = 100 });
        Assert.Equal(ImageDecodingError.TooLarge, e.Error);
        Assert.Contains("MaxPixels", e.Message);
    }

    [Fact]
    public void DecompressionBombHeaderIsRefusedWithoutAllocating()
    {
        // A valid PNG header claiming 100000 x 100000 pixels, followed by nothing.
        var png = new List<byte>(PngDecoder.Signature.ToArray());
        var ihdr = new byte[] { 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R', 0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 2, 0, 0, 0, 0, 0, 0, 0 };
        png.AddRange(ihdr);
        var bytes = png.ToArray();
        FixCrc(bytes, 12, 17);
        Assert.Equal(ImageDecodingError.TooLarge, Fails(bytes, "bomb.png").Error);
    }

    [Fact]
    public void MissingFileAndLabelErrorsNameTheSource()
    {
        string missing = Path.Combine(Path.GetTempPath(), "no-such-image-" + Guid.NewGuid().ToString("N") + ".png");
        Assert.Throws<FileNotFoundException>(() => ImageDecoder.Decode(missing));
        var e = Assert.Throws<ImageDecodingException>(() => ImageDecoder.DecodeLabelMap(PillowFixtures.PathOf(Path.Combine("decode", "photo_q90.jpg"))));
        Assert.Equal(ImageDecodingError.Unsupported, e.Error);
        Assert.Contains("photo_q90.jpg", e.Message);
    }

    [Fact]
    public void RandomDamageNeverEscapesAsAnotherException()
    {
        var rng = new Random(5);
        foreach (var path in Directory.EnumerateFiles(PillowFixtures.PathOf("decode")).Order())
        {
            var original = File.ReadAllBytes(path);
            for (int trial = 0; trial < 25; trial++)
            {
                var data = (byte[])original.Clone();
                int hits = 1 + rng.Next(8);
                for (int h = 0; h < hits; h++) data[rng.Next(data.Length)] = (byte)rng.Next(256);
                if (rng.Next(3) == 0) data = data[..rng.Next(1, data.Length)];
                var e = Record.Exception(() => ImageDecoder.Decode(data, "damaged"));
                Assert.True(e is null or ImageDecodingException, $"{Path.GetFileName(path)} trial {trial}: {e}");
            }
        }
    }

    private static int IndexOf(byte[] data, ReadOnlySpan<byte> needle) => data.AsSpan().IndexOf(needle);

    /// <summary>Rewrites the CRC of the chunk whose type starts at <paramref name="typeOffset"/> with <paramref name="length"/> bytes of type+data.</summary>
    private static void FixCrc(byte[] data, int typeOffset, int length)
    {
        uint crc = System.IO.Hashing.Crc32.HashToUInt32(data.AsSpan(typeOffset, length));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(typeOffset + length), crc);
    }
}
