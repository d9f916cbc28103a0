using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>Compares TorchSharp outputs with Hugging Face reference tensors and logs the max abs difference per key (run with <c>--logger "console;verbosity=detailed"</c> to see them).</summary>
internal sealed class ParityAssert(ITestOutputHelper output, string caseName)
{
    public static Dictionary<string, TensorData> Io(string folder) => SafeTensors.Read(Path.Combine(folder, "io.safetensors"));

    public static Tensor Input(TensorData t) => BeitTensors.ToTorch(t);

    /// <summary>Asserts max |actual − expected| ≤ <paramref name="tolerance"/> and equal shapes; logs and records the difference.</summary>
    public double Close(string key, Tensor actual, TensorData expected, double tolerance = 1e-4)
    {
        Assert.Equal(expected.Shape, actual.shape);
        var a = BeitTensors.ToTensorData(actual.to_type(ScalarType.Float32)).ToFloatArray();
        var e = expected.ToFloatArray();
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - e[i]);
            if (double.IsNaN(d)) d = double.PositiveInfinity;
            max = Math.Max(max, d);
        }
        output.WriteLine($"PARITY {caseName} {key}: max abs diff {max:E2} (tolerance {tolerance:E0})");
        Assert.True(max <= tolerance, $"{caseName} {key}: max abs diff {max:E3} exceeds {tolerance:E0}");
        return max;
    }

    /// <summary>Asserts integer maps are identical.</summary>
    public void Exact(string key, IReadOnlyList<int> actual, TensorData expected)
    {
        var e = expected.ToInt64Array();
        Assert.Equal(e.Length, actual.Count);
        int differing = e.Where((v, i) => v != actual[i]).Count();
        output.WriteLine($"PARITY {caseName} {key}: {differing} of {e.Length} labels differ (exact match required)");
        Assert.Equal(0, differing);
    }
}
