using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Attention;

/// <summary><see cref="BeitHeatMap"/>: PNG size, placement over the processor's crop window, colours and bad maps.</summary>
public sealed class BeitHeatMapTests
{
    private static RgbImage Grey(int width, int height) => new(new PixelSize(height, width), Enumerable.Repeat((byte)128, width * height * 3).ToArray());

    [Fact]
    public void OverlayPngHasTheImageSize()
    {
        var image = ImageDecoder.Decode(Fixtures.Preproc("chelsea.png"));
        var map = Enumerable.Range(0, 16).Select(i => (float)i).ToArray();
        var png = BeitHeatMap.EncodePng(BeitHeatMap.Overlay(image, map, new PixelSize(4, 4)));
        var back = ImageDecoder.Decode(png, "heat.png");
        Assert.Equal((image.Width, image.Height), (back.Width, back.Height));
        Assert.NotEqual(image.Pixels, back.Pixels);
    }

    [Fact]
    public void MapIsPlacedAndColouredTopLeftLowBottomRightHigh()
    {
        // Grid 2×2 over a 40×20 image (height 20, width 40): the lowest cell is top-left (blue), the highest bottom-right (red).
        var heat = BeitHeatMap.Overlay(Grey(40, 20), [0, 1, 2, 3], new PixelSize(2, 2), alpha: 1);
        byte[] Px(int x, int y) => heat.Pixels.AsSpan((y * 40 + x) * 3, 3).ToArray();
        Assert.Equal(new byte[] { 0, 0, 128 }, Px(0, 0));   // jet(0) = dark blue
        Assert.Equal(new byte[] { 128, 0, 0 }, Px(39, 19)); // jet(1) = dark red
    }

    [Fact]
    public void CenterCropWindowLeavesTheBorderUntouched()
    {
        // Resize 40×40 → 40×40, center crop 20×20: the map covers rows and columns 10..29 only.
        var processor = new BeitImageProcessor { Size = ResizeSize.Exact(40, 40), CropSize = new PixelSize(20, 20) };
        var image = Grey(40, 40);
        var heat = BeitHeatMap.Overlay(image, [0, 1, 2, 3], new PixelSize(2, 2), processor);
        for (int y = 0; y < 40; y++)
        {
            for (int x = 0; x < 40; x++)
            {
                bool inside = x is >= 10 and < 30 && y is >= 10 and < 30;
                bool same = heat.Pixels.AsSpan((y * 40 + x) * 3, 3).SequenceEqual(image.Pixels.AsSpan((y * 40 + x) * 3, 3));
                Assert.True(inside != same, $"pixel ({y}, {x}) inside={inside} unchanged={same}");
            }
        }
    }

    [Fact]
    public void BadMapsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => BeitHeatMap.Overlay(Grey(4, 4), [1, 2, 3], new PixelSize(2, 2)));
        Assert.Throws<ArgumentException>(() => BeitHeatMap.Overlay(Grey(4, 4), [1, float.NaN, 3, 4], new PixelSize(2, 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => BeitHeatMap.Overlay(Grey(4, 4), [1, 2, 3, 4], new PixelSize(2, 2), alpha: 2));
    }
}
