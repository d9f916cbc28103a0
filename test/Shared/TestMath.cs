using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests;

/// <summary>The one element-wise comparison every parity test measures with.</summary>
internal static class TestMath
{
    /// <summary>max |actual − expected| over equally long spans; a NaN on either side fails the test instead of hiding in the max.</summary>
    public static float MaxAbsDiff(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]) || float.IsNaN(expected[i]), $"NaN at {i}");
            max = Math.Max(max, Math.Abs(actual[i] - expected[i]));
        }
        return max;
    }

    /// <summary>As <see cref="MaxAbsDiff(ReadOnlySpan{float}, ReadOnlySpan{float})"/>, after checking the shapes match.</summary>
    public static float MaxAbsDiff(TensorData actual, TensorData expected)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        return MaxAbsDiff(actual.ToFloatArray(), expected.ToFloatArray());
    }
}
