using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.Beit.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>
/// <see cref="BeitAttentionMapsTorch"/>: the TorchSharp model's attention maps against Hugging Face's
/// <c>output_attentions</c> on <c>cls_relpos</c> (max abs diff ≤ 1e-5), and against the ONNX export's.
/// </summary>
public class BeitAttentionMapsTorchTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-5f;

    [Fact]
    [Trait("Category", "Slow")]
    public void TorchMapsMatchHuggingFaceAndOnnx()
    {
        var fixture = Fixtures.Tiny("cls_relpos");
        var io = SafeTensors.Read(Path.Combine(fixture, "io.safetensors"));
        using var model = BeitForImageClassification.FromPretrained(fixture);
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var result = model.forward(BeitTensors.ToTorch(io["pixel_values"]), outputAttentions: true);
        var grid = new PixelSize(4, 4);
        var torchMaps = BeitAttentionMapsTorch.FromOutput(result, grid, image: 1);

        using var session = new BeitOnnxSession(BeitOnnxExporter.ExportToBytes(fixture, BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { OutputAttentions = true }));
        var onnxMaps = BeitAttentionMaps.FromOutputs(session.Run(io["pixel_values"].ToFloatArray(), 2), grid, image: 1);
        for (int l = 0; l < 4; l++)
        {
            var expected = io[$"attentions.{l}"].ToFloatArray().AsSpan(4 * 17 * 17, 4 * 17 * 17);
            float hf = Diff(torchMaps.Layer(l), expected), onnx = Diff(torchMaps.Layer(l), onnxMaps.Layer(l));
            output.WriteLine($"attentions.{l}: torch vs HF {hf:E2}, torch vs ONNX {onnx:E2}");
            Assert.True(hf <= Tolerance && onnx <= Tolerance);
        }
        foreach (var method in new[] { BeitAttentionMethod.Rollout, BeitAttentionMethod.Cls })
            Assert.True(Diff(torchMaps.Map(method), onnxMaps.Map(method)) <= Tolerance, $"{method} map differs");

        using var plain = model.forward(BeitTensors.ToTorch(io["pixel_values"]));
        Assert.Throws<ArgumentException>(() => BeitAttentionMapsTorch.FromOutput(plain, grid));
        Assert.Throws<ArgumentException>(() => BeitAttentionMapsTorch.FromOutput(result, new PixelSize(2, 2)));
    }

    private static float Diff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return float.IsNaN(max) ? float.PositiveInfinity : max;
    }
}
