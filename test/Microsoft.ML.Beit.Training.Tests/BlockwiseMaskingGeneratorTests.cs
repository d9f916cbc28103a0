using Microsoft.ML.Beit.Training.Pretraining;

namespace Beit.Tests;

public class BlockwiseMaskingGeneratorTests
{
    [Theory]
    [InlineData(14, 14, 75, 16)]
    [InlineData(14, 14, 98, 16)]
    [InlineData(7, 7, 20, 4)]
    [InlineData(4, 4, 6, 2)]
    public void EveryMaskHasExactlyTheTargetCount(int gh, int gw, int target, int min)
    {
        var g = new BlockwiseMaskingGenerator(new() { GridHeight = gh, GridWidth = gw, NumMaskingPatches = target, MinNumPatches = min, Seed = 7 });
        for (int i = 0; i < 500; i++)
        {
            var mask = g.Next();
            Assert.Equal(gh * gw, mask.Length);
            Assert.Equal(target, mask.Count(m => m));
        }
    }

    [Fact]
    public void BlocksRespectSizeAspectAndGridBounds()
    {
        var o = new BlockwiseMaskingGenerator.Options { Seed = 3 };
        var g = new BlockwiseMaskingGenerator(o);
        int blocks = 0;
        for (int i = 0; i < 500; i++)
        {
            g.Next(out var placed);
            foreach (var b in placed)
            {
                blocks++;
                Assert.InRange(b.Height, 1, o.GridHeight - 1);
                Assert.InRange(b.Width, 1, o.GridWidth - 1);
                Assert.InRange(b.Top, 0, o.GridHeight - b.Height);
                Assert.InRange(b.Left, 0, o.GridWidth - b.Width);
                Assert.InRange(b.Aspect, o.MinAspect - 1e-12, 1 / o.MinAspect + 1e-12);
                Assert.Equal((int)Math.Round(Math.Sqrt(b.Area * b.Aspect)), b.Height);
                Assert.Equal((int)Math.Round(Math.Sqrt(b.Area / b.Aspect)), b.Width);
                if (b.Budget >= o.MinNumPatches)
                {
                    Assert.InRange(b.Area, o.MinNumPatches, b.Budget);
                    // The paper's aspect range [0.3, 1/0.3], widened only by rounding each side to whole patches.
                    Assert.InRange((double)b.Height / b.Width, 0.2, 5.0);
                }
            }
        }
        Assert.True(blocks > 500);
    }

    [Fact]
    public void SameSeedGivesSameMasksAndOtherSeedDiffers()
    {
        var a = new BlockwiseMaskingGenerator(new() { Seed = 42 });
        var b = new BlockwiseMaskingGenerator(new() { Seed = 42 });
        var c = new BlockwiseMaskingGenerator(new() { Seed = 43 });
        bool anyDiff = false;
        for (int i = 0; i < 20; i++)
        {
            var ma = a.Next();
            Assert.Equal(ma, b.Next());
            anyDiff |= !ma.SequenceEqual(c.Next());
        }
        Assert.True(anyDiff);
    }

    [Fact]
    public void MasksAreBlockyNotScattered()
    {
        // Blockwise masking leaves most masked patches with a masked 4-neighbour, unlike uniform random masking.
        var g = new BlockwiseMaskingGenerator(new() { Seed = 1 });
        double withNeighbour = 0;
        for (int i = 0; i < 100; i++)
        {
            var m = g.Next();
            int n = 0;
            for (int p = 0; p < 196; p++)
            {
                if (!m[p]) continue;
                int y = p / 14, x = p % 14;
                if ((y > 0 && m[p - 14]) || (y < 13 && m[p + 14]) || (x > 0 && m[p - 1]) || (x < 13 && m[p + 1])) n++;
            }
            withNeighbour += n / 75.0;
        }
        Assert.True(withNeighbour / 100 > 0.9, $"only {withNeighbour / 100:P0} of masked patches touch another");
    }

    [Fact]
    public void RejectsImpossibleSettings()
    {
        Assert.Throws<ArgumentException>(() => new BlockwiseMaskingGenerator(new() { NumMaskingPatches = 197 }));
        Assert.Throws<ArgumentException>(() => new BlockwiseMaskingGenerator(new() { MinAspect = 0 }));
    }
}
