using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.Beit.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>
/// DiT-style checkpoints (<c>microsoft/dit-*</c>: BEiT with absolute position embeddings <c>[1, N+1, D]</c> and no relative
/// bias), made from the tiny fixtures: our ONNX export against the TorchSharp model, at the native and at a non-square
/// resolution, and the TorchSharp position resize against PyTorch.
/// </summary>
public sealed class DiTAbsolutePositionTests(ITestOutputHelper output)
{
    /// <summary>The stated tolerance between the ONNX Runtime and TorchSharp engines (fp32, tiny model).</summary>
    private const double EngineTolerance = 1e-5;

    /// <summary>The fixture with its relative position tables replaced by a random absolute position table.</summary>
    private static (BeitConfig Config, Dictionary<string, TensorData> Tensors) DiT(string fixture)
    {
        var (config, tensors) = BeitCheckpoint.Load(Fixtures.Tiny(fixture));
        config.UseAbsolutePositionEmbeddings = true;
        config.UseRelativePositionBias = false;
        config.UseSharedRelativePositionBias = false;
        var t = tensors.Where(kv => !kv.Key.Contains("relative_position", StringComparison.Ordinal)).ToDictionary();
        var random = new Random(14);
        int rows = config.GridSize * config.GridSize + 1;
        t["beit.embeddings.position_embeddings"] = TensorData.FromFloats(
            Enumerable.Range(0, rows * config.HiddenSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, rows, config.HiddenSize);
        return (config, t);
    }

    private static float[] RandomPixels(int batch, int height, int width)
    {
        var random = new Random(height * 1000 + width);
        return Enumerable.Range(0, batch * 3 * height * width).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
    }

    /// <summary>Our export at <paramref name="height"/>×<paramref name="width"/>, run by ONNX Runtime on a batch of two.</summary>
    private static TensorData OnnxLogits(BeitConfig config, Dictionary<string, TensorData> tensors, BeitOnnxTask task, int height, int width, float[] pixels, bool[]? mask)
    {
        var bytes = BeitOnnxExporter.ExportToBytes(config, tensors, task, new BeitOnnxExportOptions { ImageHeight = height, ImageWidth = width });
        using var session = new BeitOnnxSession(bytes, new BeitOnnxSessionOptions { IntraOpNumThreads = 1 });
        return session.Run(pixels, 2, mask)["logits"];
    }

    private double AssertClose(string what, Tensor torchSharp, TensorData onnx)
    {
        Assert.Equal(onnx.Shape, torchSharp.shape);
        var a = BeitTensors.ToTensorData(torchSharp).ToFloatArray();
        var b = onnx.ToFloatArray();
        double max = a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
        output.WriteLine($"{what}: max abs diff {max:E2} (tolerance {EngineTolerance:E0})");
        Assert.True(max <= EngineTolerance, $"{what}: max abs diff {max} exceeds {EngineTolerance}");
        return max;
    }

    [Theory]
    [InlineData(32, 32)] // the native 4×4 grid: the table as is
    [InlineData(24, 40)] // a 3×5 grid: the table resized bicubically
    public void ClassificationExportMatchesTorchSharp(int height, int width)
    {
        var (config, tensors) = DiT("cls_relpos");
        var pixels = RandomPixels(2, height, width);
        using var model = new BeitForImageClassification(config);
        model.LoadWeights(tensors);
        model.eval();
        var onnx = OnnxLogits(config, tensors, BeitOnnxTask.ImageClassification, height, width, pixels, null);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.forward(tensor(pixels).reshape(2, 3, height, width)).Logits;
        AssertClose($"DiT classification logits at {height}x{width}", logits, onnx);
    }

    [Theory]
    [InlineData(32, 32)]
    [InlineData(40, 24)]
    public void MaskedImageModelingExportMatchesTorchSharp(int height, int width)
    {
        var (config, tensors) = DiT("mim_shared");
        var pixels = RandomPixels(2, height, width);
        int patches = height / config.PatchSize * (width / config.PatchSize);
        var mask = Enumerable.Range(0, 2 * patches).Select(i => i % 3 == 1).ToArray();
        using var model = new BeitForMaskedImageModeling(config);
        model.LoadWeights(tensors);
        model.eval();
        var onnx = OnnxLogits(config, tensors, BeitOnnxTask.MaskedImageModeling, height, width, pixels, mask);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.forward(tensor(pixels).reshape(2, 3, height, width), tensor(mask).reshape(2, patches)).Logits;
        AssertClose($"DiT masked-image-modeling logits at {height}x{width}", logits, onnx);
    }

    [Fact]
    public void TorchSharpPositionResizeMatchesTorch()
    {
        // transformers' interpolate_pos_encoding of a 14×14 table of 8-dim embeddings to a 10×18 grid, made by PyTorch
        // (test/fixtures/torch-bicubic/make_reference.py). Every other embedding weight is zero, so the output is the table.
        var reference = SafeTensors.Read(Fixtures.TorchBicubic("bicubic_reference.safetensors"));
        var config = new BeitConfig { HiddenSize = 8, NumAttentionHeads = 2, PatchSize = 2, ImageSize = 28, UseAbsolutePositionEmbeddings = true };
        using var embeddings = new BeitEmbeddings(config);
        embeddings.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, p) in embeddings.named_parameters())
        {
            if (name == "position_embeddings") p.copy_(BeitTensors.ToTorch(reference["pos_embed"]));
            else p.zero_();
        }
        var tokens = embeddings.call(zeros(1, 3, 20, 36), null);
        Assert.Equal(new long[] { 1, 181, 8 }, tokens.shape);
        var a = BeitTensors.ToTensorData(tokens).ToFloatArray();
        double max = a.Zip(reference["pos_embed_interpolated"].ToFloatArray(), (x, y) => Math.Abs((double)x - y)).Max();
        output.WriteLine($"TorchSharp pos_embed 14x14 -> 10x18 vs PyTorch: max abs diff {max:E2} (tolerance 1E-04)");
        Assert.True(max <= 1e-4, $"max abs diff {max}");

        // The exporter's C# resize repeats libtorch's float operations, fused multiply-adds included: bit-identical on the
        // libtorch TorchSharp ships for x64 (0 measured); a libtorch built without FMA contraction differs by a few ulps.
        var exporter = Microsoft.ML.Beit.Modeling.BeitGeometry.InterpolatePositionEmbeddings(reference["pos_embed"].ToFloatArray(), 8, 10, 18);
        double engines = a.Zip(exporter, (x, y) => Math.Abs((double)x - y)).Max();
        output.WriteLine($"TorchSharp vs exporter pos_embed 14x14 -> 10x18: max abs diff {engines:E2} (tolerance 1E-06)");
        Assert.True(engines <= 1e-6, $"max abs diff {engines}");
    }

    [Theory]
    [InlineData(5, 7, 9, 4)]
    [InlineData(5, 7, 2, 13)]
    [InlineData(4, 4, 3, 5)]
    [InlineData(14, 14, 10, 18)]
    public void CSharpBicubicMatchesLibtorch(int inHeight, int inWidth, int outHeight, int outWidth)
    {
        using var scope = NewDisposeScope();
        var planes = randn(1, 3, inHeight, inWidth, generator: new TorchSharp.torch.Generator(3));
        var expected = nn.functional.interpolate(planes, size: [outHeight, outWidth], mode: InterpolationMode.Bicubic, align_corners: false);
        var actual = Microsoft.ML.Beit.Modeling.TorchInterpolation.ResizeBicubic(planes.data<float>().ToArray(), 3, inHeight, inWidth, outHeight, outWidth);
        double max = actual.Zip(expected.data<float>().ToArray(), (x, y) => Math.Abs((double)x - y)).Max();
        output.WriteLine($"C# bicubic vs libtorch {inHeight}x{inWidth} -> {outHeight}x{outWidth}: max abs diff {max:E2} (tolerance 1E-06)");
        Assert.True(max <= 1e-6, $"max abs diff {max}");
    }
}
