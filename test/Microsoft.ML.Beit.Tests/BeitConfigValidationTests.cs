using Microsoft.ML.Beit;

namespace Beit.Tests;

/// <summary>Values no BEiT model can have are rejected by name (heads and segmentation fields).</summary>
public class BeitConfigValidationTests
{
    [Theory]
    [InlineData("""{"auxiliary_channels":0}""", "auxiliary_channels")]
    [InlineData("""{"auxiliary_num_convs":-1}""", "auxiliary_num_convs")]
    [InlineData("""{"auxiliary_loss_weight":-0.4}""", "auxiliary_loss_weight")]
    [InlineData("""{"initializer_range":-1}""", "initializer_range")]
    [InlineData("""{"out_indices":[3,5,7,13]}""", "out_indices")]
    [InlineData("""{"pool_scales":[1,0]}""", "pool_scales")]
    public void RejectsImpossibleHeadValues(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => BeitConfig.FromJson(json));
        Assert.Contains(expected, e.Message);
    }
}
