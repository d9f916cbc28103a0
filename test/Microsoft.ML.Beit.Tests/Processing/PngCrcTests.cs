using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Processing;

/// <summary>The PNG decoder checks chunk CRCs with System.IO.Hashing's CRC-32, the one PNG (ISO 3309) and zip use.</summary>
public class PngCrcTests
{
    [Fact]
    public void Crc32IsThePngChunkCrc()
    {
        // The IEND chunk every PNG ends with: type "IEND", no data, CRC AE 42 60 82.
        Assert.Equal(0xAE426082u, Crc32.HashToUInt32("IEND"u8));
        var png = File.ReadAllBytes(Fixtures.Preproc("chelsea.png"));
        int chunks = 0;
        for (int pos = 8; pos < png.Length; chunks++)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + length));
            Assert.Equal(stored, Crc32.HashToUInt32(png.AsSpan(pos + 4, 4 + length)));
            pos += 12 + length;
        }
        Assert.True(chunks >= 3, $"{chunks} chunks");
    }

    [Fact]
    public void TheDecoderRefusesABadCrcAndAcceptsTheRecomputedOne()
    {
        var png = File.ReadAllBytes(Fixtures.Preproc("chelsea.png"));
        var expected = ImageDecoder.Decode(png, "chelsea.png");
        // IHDR starts at byte 8: 4 length bytes, "IHDR", 13 data bytes, then its CRC at byte 29.
        png[29] ^= 0x01;
        var e = Assert.Throws<ImageDecodingException>(() => ImageDecoder.Decode(png, "flipped.png"));
        Assert.Equal(ImageDecodingError.Corrupt, e.Error);
        Assert.Contains("bad CRC", e.Message);

        // The CRC System.IO.Hashing computes over type and data is the one the decoder accepts.
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32.HashToUInt32(png.AsSpan(12, 17)));
        Assert.Equal(expected.Pixels, ImageDecoder.Decode(png, "fixed.png").Pixels);
    }
}
