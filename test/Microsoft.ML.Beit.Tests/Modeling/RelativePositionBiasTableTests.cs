using Microsoft.ML.Beit.Modeling;

namespace Beit.Tests.Modeling;

/// <summary>The dense relative position bias and its resize to other windows (<c>modeling_beit.py</c>, <c>BeitRelativePositionBias</c>).</summary>
public sealed class RelativePositionBiasTableTests
{
    [Fact]
    public void GatherFollowsTheRelativePositionIndex()
    {
        int g = 3, heads = 2, m = BeitGeometry.RelativeTableRows(g, g), t = g * g + 1;
        var table = Enumerable.Range(0, m * heads).Select(i => (float)i).ToArray();
        var bias = RelativePositionBiasTable.Gather(table, heads, g, g);
        var index = BeitGeometry.RelativePositionIndex(g, g);
        Assert.Equal(heads * t * t, bias.Length);
        for (int h = 0; h < heads; h++)
            for (int q = 0; q < t * t; q++)
                Assert.Equal(table[index[q] * heads + h], bias[h * t * t + q]);
        // CLS→CLS, CLS→token and token→CLS use the last three rows.
        Assert.Equal(table[(m - 1) * heads], bias[0]);
        Assert.Equal(table[(m - 3) * heads], bias[1]);
        Assert.Equal(table[(m - 2) * heads], bias[t]);
    }

    [Fact]
    public void ResizeKeepsTheClsRowsAndIsIdentityAtTheNativeWindow()
    {
        int heads = 4, m0 = BeitGeometry.RelativeTableRows(4, 4);
        var rng = new Random(5);
        var table = Enumerable.Range(0, m0 * heads).Select(_ => (float)rng.NextDouble()).ToArray();
        Assert.Same(table, RelativePositionBiasTable.InterpolateTable(table, heads, 4, 4, 4, 4));

        var resized = RelativePositionBiasTable.InterpolateTable(table, heads, 4, 4, 6, 5);
        int m1 = BeitGeometry.RelativeTableRows(6, 5);
        Assert.Equal(m1 * heads, resized.Length);
        Assert.Equal(table[^(3 * heads)..], resized[^(3 * heads)..]);
        // The zero-offset entry of the 7×7 offset grid maps to the centre of the 11×9 grid.
        int oldCentre = 3 * 7 + 3, newCentre = 5 * 9 + 4;
        for (int h = 0; h < heads; h++) Assert.Equal(table[oldCentre * heads + h], resized[newCentre * heads + h], 1e-6f);
    }

    [Fact]
    public void WrongTableSizeIsRejected()
    {
        Assert.Throws<ArgumentException>(() => RelativePositionBiasTable.Gather(new float[10], 2, 3, 3));
    }
}
