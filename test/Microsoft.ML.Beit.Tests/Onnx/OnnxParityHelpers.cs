using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Scoring;
using Xunit.Abstractions;

namespace Beit.Tests.Onnx;

/// <summary>Exports fixture checkpoints and compares ONNX Runtime outputs with the Hugging Face references.</summary>
internal static class OnnxParityHelpers
{
    /// <summary>The parity tolerance the issue states for every case.</summary>
    public const float Tolerance = 1e-4f;

    public static IReadOnlyDictionary<string, TensorData> Io(string fixture) =>
        SafeTensors.Read(Path.Combine(Fixtures.Tiny(fixture), "io.safetensors"));

    public static BeitOnnxSession Session(string fixture, BeitOnnxTask task, BeitOnnxOperatorSet set, BeitOnnxExportOptions? options = null)
    {
        options ??= new BeitOnnxExportOptions();
        options.OperatorSet = set;
        var bytes = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny(fixture), task, options);
        return new BeitOnnxSession(bytes, new BeitOnnxSessionOptions { IntraOpThreads = 1 });
    }

    public static float MaxAbsDiff(TensorData actual, TensorData expected)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        var a = actual.ToFloatArray();
        var e = expected.ToFloatArray();
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.False(float.IsNaN(a[i]), $"NaN at {i}");
            max = Math.Max(max, Math.Abs(a[i] - e[i]));
        }
        return max;
    }

    /// <summary>Asserts the max abs diff is within <see cref="Tolerance"/> and logs it.</summary>
    public static void AssertClose(ITestOutputHelper output, string what, TensorData actual, TensorData expected)
    {
        float diff = MaxAbsDiff(actual, expected);
        output.WriteLine($"{what}: max abs diff {diff:E2}");
        Assert.True(diff <= Tolerance, $"{what}: max abs diff {diff} exceeds {Tolerance}");
    }

    public static TensorData Softmax(TensorData logits)
    {
        var v = logits.ToFloatArray();
        int c = (int)logits.Shape[^1];
        var r = new float[v.Length];
        for (int row = 0; row < v.Length / c; row++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < c; j++) max = Math.Max(max, v[row * c + j]);
            for (int j = 0; j < c; j++) sum += Math.Exp(v[row * c + j] - max);
            for (int j = 0; j < c; j++) r[row * c + j] = (float)(Math.Exp(v[row * c + j] - max) / sum);
        }
        return TensorData.FromFloats(r, logits.Shape);
    }
}
