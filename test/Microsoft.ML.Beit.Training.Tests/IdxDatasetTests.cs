using Microsoft.ML.Beit.Training.Data;

namespace Beit.Tests;

public class IdxDatasetTests
{
    private static string Subset => Path.Combine(Fixtures.Root, "..", "..", "..", "samples", "data", "fashion-mnist");

    [Fact]
    public void ReadsTheBundledFashionMnistSubset()
    {
        var train = IdxDataset.Load(Subset, "train");
        Assert.Equal(3000, train.Count);
        Assert.Equal(28, train.Height);
        Assert.Equal(28, train.Width);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(300, train.Labels.Count(l => l == c)));
        Assert.Contains(train.Image(0).ToArray(), b => b > 0);
        var small = train.PerClassSubset(3);
        Assert.Equal(30, small.Count);
        Assert.Equal(train.Image(0).ToArray(), small.Image(0).ToArray());
    }

    [Fact]
    public void TruncatedFilesAreRejectedByName()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Subset, "t10k-labels-idx1-ubyte.gz"), Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        var raw = new byte[16 + 10];
        raw[3] = 0x03; raw[2] = 0x08; // 2051
        raw[7] = 100; raw[11] = 28; raw[15] = 28;
        File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), raw);
        var e = Assert.Throws<InvalidDataException>(() => IdxDataset.Load(dir, "t10k"));
        Assert.Contains("t10k-images-idx3-ubyte", e.Message);
    }
}
