using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.OnnxRuntime;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Scoring;

/// <summary>The scoring session wrapper: providers and their fallback rule, batching, validation, disposal.</summary>
public sealed class BeitOnnxSessionTests
{
    private static readonly Lazy<byte[]> s_cls = new(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification));

    [Fact]
    public void OrtSettingsUseMLNetsNamesEverywhere()
    {
        // One vocabulary: ML.NET's OnnxOptions names on the session options and on every stage's options.
        string[] names = ["GpuDeviceId", "FallbackToCpu", "IntraOpNumThreads", "InterOpNumThreads"];
        foreach (var name in names)
        {
            Assert.NotNull(typeof(Microsoft.ML.Transforms.Onnx.OnnxOptions).GetField(name));
            Assert.NotNull(typeof(BeitOnnxSessionOptions).GetProperty(name));
            Assert.NotNull(typeof(Microsoft.ML.Beit.Estimators.BeitOnnxStageOptions).GetProperty(name));
        }
    }

    [Fact]
    public void CpuIsTheDefault()
    {
        using var session = new BeitOnnxSession(s_cls.Value);
        Assert.Equal("CPUExecutionProvider", session.ExecutionProvider);
    }

    [Fact]
    public void GpuDeviceIdFailsLoudlyWithoutTheGpuPackage()
    {
        // The tests reference the CPU-only native package, so CUDA is not available here.
        var e = Assert.Throws<InvalidOperationException>(() => new BeitOnnxSession(s_cls.Value, new BeitOnnxSessionOptions { GpuDeviceId = 0 }));
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", e.Message);
    }

    [Fact]
    public void FallbackToCpuRunsOnTheCpuAndSaysSo()
    {
        var notes = new List<string>();
        using var session = new BeitOnnxSession(s_cls.Value, new BeitOnnxSessionOptions { GpuDeviceId = 0, FallbackToCpu = true, Log = notes.Add });
        Assert.Equal("CPUExecutionProvider", session.ExecutionProvider);
        var note = Assert.Single(notes);
        Assert.Contains("CPU", note);
        var io = Io("cls_relpos");
        Assert.True(TestMath.MaxAbsDiff(session.Run(io["pixel_values"].ToFloatArray(), 2)["logits"], io["logits"]) <= Tolerance);
    }

    [Fact]
    public void RunBatchesYieldsEachImageInOrder()
    {
        var io = Io("cls_relpos");
        var pixels = io["pixel_values"].ToFloatArray();
        int len = 3 * 32 * 32;
        var images = new[] { pixels[..len], pixels[len..], pixels[..len] };
        using var session = new BeitOnnxSession(s_cls.Value, new BeitOnnxSessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 });
        var results = session.RunBatches(images, batchSize: 2).ToList();
        Assert.Equal(3, results.Count);
        var reference = io["logits"].ToFloatArray();
        int[] which = [0, 1, 0];
        for (int i = 0; i < 3; i++)
        {
            var logits = results[i]["logits"];
            Assert.Equal([1L, 5], logits.Shape);
            var v = logits.ToFloatArray();
            for (int k = 0; k < 5; k++) Assert.True(Math.Abs(v[k] - reference[which[i] * 5 + k]) <= Tolerance);
        }
    }

    [Fact]
    public void OptimizationLevelsAgree()
    {
        var io = Io("cls_relpos");
        var pixels = io["pixel_values"].ToFloatArray();
        foreach (var level in new[] { GraphOptimizationLevel.ORT_DISABLE_ALL, GraphOptimizationLevel.ORT_ENABLE_BASIC, GraphOptimizationLevel.ORT_ENABLE_ALL })
        {
            using var session = new BeitOnnxSession(s_cls.Value, new BeitOnnxSessionOptions { GraphOptimizationLevel = level, IntraOpNumThreads = 2 });
            Assert.True(TestMath.MaxAbsDiff(session.Run(pixels, 2)["logits"], io["logits"]) <= Tolerance, level.ToString());
        }
    }

    [Fact]
    public void SelectedOutputsOnly()
    {
        var io = Io("cls_relpos");
        using var session = new BeitOnnxSession(s_cls.Value);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2, outputNames: ["probabilities"]);
        Assert.Equal(["probabilities"], r.Keys);
        Assert.Throws<ArgumentException>(() => session.Run(io["pixel_values"].ToFloatArray(), 2, outputNames: ["nope"]));
    }

    [Fact]
    public void BadInputsAreRejectedWithReasons()
    {
        using var session = new BeitOnnxSession(s_cls.Value);
        var e = Assert.Throws<ArgumentException>(() => session.Run(new float[100], 1));
        Assert.Contains("3072", e.Message);
        Assert.Throws<ArgumentException>(() => session.Run(new float[3072], 1, new bool[16]));
        Assert.Throws<ArgumentOutOfRangeException>(() => session.Run(new float[3072], 0));

        using var mim = new BeitOnnxSession(BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("mim_shared"), BeitOnnxTask.MaskedImageModeling));
        Assert.Throws<ArgumentException>(() => mim.Run(new float[3072], 1));
        Assert.Throws<ArgumentException>(() => mim.Run(new float[3072], 1, new bool[15]));
        Assert.Equal([1L, 16, 64], mim.Run(new float[3072], 1, new bool[16])["logits"].Shape);
    }

    [Fact]
    public void NotABeitGraphIsRejected()
    {
        var model = Onnx.TinyGraphs.Identity();
        Assert.Throws<InvalidDataException>(() => new BeitOnnxSession(model));
    }

    [Fact]
    public void DisposedSessionRefusesToRun()
    {
        var session = new BeitOnnxSession(s_cls.Value);
        session.Dispose();
        session.Dispose();
        Assert.Throws<ObjectDisposedException>(() => session.Run(new float[3072], 1));
    }
}
