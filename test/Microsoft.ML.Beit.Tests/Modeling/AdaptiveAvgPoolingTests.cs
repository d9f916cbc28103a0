using Microsoft.ML.Beit.Modeling;

namespace Beit.Tests.Modeling;

/// <summary>Exact PyTorch adaptive average pooling bins, including the overlapping ones of the ADE20K UperNet head.</summary>
public sealed class AdaptiveAvgPoolingTests
{
    [Fact]
    public void BinsOverlapLikePyTorchWhenTheOutputDoesNotDivideTheInput()
    {
        // torch.nn.AdaptiveAvgPool1d semantics: [floor(i·n/s), ceil((i+1)·n/s)).
        Assert.Equal([(0, 7), (6, 14), (13, 20)], AdaptiveAvgPooling.Bins(20, 3));
        Assert.Equal([(0, 4), (3, 7), (6, 10), (10, 14), (13, 17), (16, 20)], AdaptiveAvgPooling.Bins(20, 6));
        Assert.Equal([(0, 14), (13, 27), (26, 40)], AdaptiveAvgPooling.Bins(40, 3));
        // The seg_uper fixture pools a 4×4 map to 6×6: more cells than inputs.
        Assert.Equal([(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)], AdaptiveAvgPooling.Bins(4, 6));
        Assert.Equal([(0, 20)], AdaptiveAvgPooling.Bins(20, 1));
    }

    [Theory]
    [InlineData(20, 20, 3, 3)]
    [InlineData(20, 20, 6, 6)]
    [InlineData(4, 4, 6, 6)]
    [InlineData(7, 5, 2, 3)]
    public void MatrixEqualsDirectPooling(int h, int w, int oh, int ow)
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 2 * h * w).Select(_ => (float)rng.NextDouble()).ToArray();
        var direct = AdaptiveAvgPooling.Pool(x, 2, h, w, oh, ow);
        var m = AdaptiveAvgPooling.Matrix(h, w, oh, ow);
        for (int p = 0; p < 2; p++)
        {
            for (int cell = 0; cell < oh * ow; cell++)
            {
                double sum = 0;
                for (int i = 0; i < h * w; i++) sum += m[cell * h * w + i] * x[p * h * w + i];
                Assert.Equal(direct[p * oh * ow + cell], (float)sum, 1e-6f);
            }
        }
    }

    [Fact]
    public void DivisibleSizesAreBlockMeans()
    {
        var x = Enumerable.Range(0, 16).Select(i => (float)i).ToArray(); // 4×4
        Assert.Equal([2.5f, 4.5f, 10.5f, 12.5f], AdaptiveAvgPooling.Pool(x, 1, 4, 4, 2, 2));
    }
}
