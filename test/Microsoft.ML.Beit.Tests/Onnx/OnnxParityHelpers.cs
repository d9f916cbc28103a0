using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Scoring;
using Xunit.Abstractions;

namespace Beit.Tests.Onnx;

/// <summary>Exports fixture checkpoints and compares ONNX Runtime outputs with the Hugging Face references.</summary>
internal static class OnnxParityHelpers
{
    /// <summary>The ONNX-vs-Hugging-Face parity tolerance for every case (measured differences are at most a few 1e-6).</summary>
    public const float Tolerance = 1e-5f;

    public static IReadOnlyDictionary<string, TensorData> Io(string fixture) =>
        SafeTensors.Read(Path.Combine(Fixtures.Tiny(fixture), "io.safetensors"));

    public static BeitOnnxSession Session(string fixture, BeitOnnxTask task, BeitOnnxOperatorSet set, BeitOnnxExportOptions? options = null)
    {
        options ??= new BeitOnnxExportOptions();
        options.OperatorSet = set;
        var bytes = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny(fixture), task, options);
        return new BeitOnnxSession(bytes, new BeitOnnxSessionOptions { IntraOpNumThreads = 1 });
    }

    /// <summary>Asserts the max abs diff is within <see cref="Tolerance"/> and logs it.</summary>
    public static void AssertClose(ITestOutputHelper output, string what, TensorData actual, TensorData expected)
    {
        float diff = TestMath.MaxAbsDiff(actual, expected);
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
