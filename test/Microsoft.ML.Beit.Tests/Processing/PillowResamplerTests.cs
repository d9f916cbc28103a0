using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Processing;

/// <summary>Every Pillow filter, up- and downscales, odd sizes, one-axis and 1-channel resizes, against Pillow 9.4's own output, byte for byte.</summary>
public class PillowResamplerTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var key in PillowFixtures.Resample.Keys.Where(k => k.StartsWith("out.")).Order()) data.Add(key);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesPillowByteForByte(string key)
    {
        // out.<source>.<FILTER>.<W>x<H>
        var parts = key.Split('.');
        var src = PillowFixtures.Resample["src." + parts[1]];
        var filter = Enum.Parse<PillowResample>(parts[2], ignoreCase: true);
        var wh = parts[3].Split('x').Select(int.Parse).ToArray();
        int h = (int)src.Shape[0], w = (int)src.Shape[1], c = src.Shape.Length == 3 ? (int)src.Shape[2] : 1;
        var expected = PillowFixtures.Resample[key];
        Assert.Equal(new long[] { wh[1], wh[0] }, expected.Shape.Take(2));

        var actual = new byte[wh[0] * wh[1] * c];
        PillowResampler.Resize(src.Data, new PixelSize(h, w), c, actual, new PixelSize(wh[1], wh[0]), filter);
        Assert.Null(PillowFixtures.FirstDifference(expected.Data, actual, wh[0], c));
    }

    [Fact]
    public void EveryFilterAndSizeKindIsCovered()
    {
        var keys = PillowFixtures.Resample.Keys.Where(k => k.StartsWith("out.")).ToList();
        foreach (var f in Enum.GetNames<PillowResample>())
            Assert.Contains(keys, k => k.Split('.')[2].Equals(f, StringComparison.OrdinalIgnoreCase));
        Assert.True(keys.Count >= 6 * 20);
    }

    [Fact]
    public void RegionIsACropOfTheFullResize()
    {
        var src = PillowFixtures.Resample["src.photo64x48"];
        foreach (var filter in Enum.GetValues<PillowResample>())
        {
            var full = new byte[97 * 61 * 3];
            PillowResampler.Resize(src.Data, new PixelSize(48, 64), 3, full, new PixelSize(61, 97), filter);
            var region = new byte[30 * 20 * 3];
            PillowResampler.ResizeRegion(src.Data, 64, 48, 3, 97, 61, filter, 40, 33, 30, 20, region);
            for (int y = 0; y < 20; y++)
                Assert.True(full.AsSpan(((33 + y) * 97 + 40) * 3, 90).SequenceEqual(region.AsSpan(y * 90, 90)), $"{filter} row {y}");
        }
    }

    [Fact]
    public void SameSizeIsACopy()
    {
        var src = PillowFixtures.Resample["src.noise17x13"];
        var dst = new byte[src.Data.Length];
        PillowResampler.Resize(src.Data, new PixelSize(13, 17), 3, dst, new PixelSize(13, 17), PillowResample.Lanczos);
        Assert.Equal(src.Data, dst);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        var src = new byte[12];
        Assert.Throws<ArgumentOutOfRangeException>(() => PillowResampler.Resize(src, new PixelSize(2, 2), 5, new byte[100], new PixelSize(3, 3), PillowResample.Box));
        Assert.Throws<ArgumentException>(() => PillowResampler.Resize(src, new PixelSize(2, 2), 3, new byte[100], new PixelSize(3, 0), PillowResample.Box));
        Assert.Throws<ArgumentException>(() => PillowResampler.Resize(src, new PixelSize(2, 2), 3, new byte[5], new PixelSize(3, 3), PillowResample.Box));
        Assert.Throws<ArgumentOutOfRangeException>(() => PillowResampler.Resize(src, new PixelSize(2, 2), 3, new byte[27], new PixelSize(3, 3), (PillowResample)9));
    }
}
