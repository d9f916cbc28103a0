using Microsoft.ML.Beit;

namespace Beit.Tests;

public class BeitConfigTests
{
    [Fact]
    public void LoadsFixtureFolderAndFile()
    {
        var c = BeitConfig.Load(Fixtures.Tiny("cls_relpos"));
        Assert.Equal(32, c.HiddenSize);
        Assert.Equal(4, c.NumHiddenLayers);
        Assert.Equal(8, c.PatchSize);
        Assert.Equal(1e-12, c.LayerNormEps);
        Assert.True(c.UseRelativePositionBias);
        Assert.Equal(5, c.NumLabels);
        Assert.Equal("horse", c.LabelName(4));
        Assert.Equal(new[] { 4 }, c.ResolvedOutIndices());
        var f = BeitConfig.Load(Path.Combine(Fixtures.Tiny("seg_uper"), "config.json"));
        Assert.Equal(new[] { 1, 2, 3, 4 }, f.ResolvedOutIndices());
    }

    [Fact]
    public void RoundTripKeepsUnknownKeysAndValues()
    {
        var c = BeitConfig.FromJson("""{"model_type":"beit","hidden_size":64,"num_attention_heads":4,"my_custom_key":{"a":[1,2]},"num_labels":3}""");
        Assert.Equal(3, c.NumLabels);
        var again = BeitConfig.FromJson(c.ToJson());
        Assert.Equal(64, again.HiddenSize);
        Assert.Equal(3, again.NumLabels);
        Assert.Equal("LABEL_2", again.LabelName(2));
        Assert.Contains("\"my_custom_key\"", again.ToJson());
    }

    [Fact]
    public void OutFeaturesResolveWhenOutIndicesAreAbsent()
    {
        var c = BeitConfig.FromJson("""{"num_hidden_layers":4,"hidden_size":32,"num_attention_heads":4,"out_features":["stage2","stage4"]}""");
        Assert.Equal(new[] { 2, 4 }, c.ResolvedOutIndices());
    }

    [Theory]
    [InlineData("""{"hidden_size":30,"num_attention_heads":4}""", "not a multiple")]
    [InlineData("""{"patch_size":0}""", "patch_size")]
    [InlineData("""{"hidden_size":"big"}""", "hidden_size")]
    [InlineData("""{"model_type":"vit"}""", "model_type")]
    [InlineData("""{"problem_type":"ranking"}""", "problem_type")]
    [InlineData("not json", "valid JSON")]
    public void RejectsImpossibleValuesWithClearMessage(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => BeitConfig.FromJson(json));
        Assert.Contains(expected, e.Message);
    }
}

public class BeitGeometryTests
{
    [Fact]
    public void RelativePositionIndexMatchesReferenceValuesFor14x14()
    {
        var r = Microsoft.ML.Beit.Modeling.BeitGeometry.RelativePositionIndex(14, 14);
        const int t = 197;
        Assert.Equal(732, Microsoft.ML.Beit.Modeling.BeitGeometry.RelativeTableRows(14, 14));
        Assert.Equal(731, r[0]);          // CLS→CLS
        Assert.Equal(729, r[5]);          // CLS→token
        Assert.Equal(730, r[5 * t]);      // token→CLS
        Assert.Equal(364, r[1 * t + 1]);  // zero offset
        Assert.Equal(364, r[100 * t + 100]);
        Assert.Equal(728, r[196 * t + 1]); // query (13,13), key (0,0): 26·27+26
        Assert.Equal(0, r[1 * t + 196]);   // query (0,0), key (13,13)
    }
}
