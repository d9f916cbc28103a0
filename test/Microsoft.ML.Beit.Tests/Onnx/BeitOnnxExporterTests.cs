using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using static Beit.Tests.Onnx.OnnxParityHelpers;

namespace Beit.Tests.Onnx;

/// <summary>The exporter's contract: errors, atomic files, graph content, metadata, dynamic batch, clean loading.</summary>
public sealed class BeitOnnxExporterTests(ITestOutputHelper output)
{
    private static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string fixture) => BeitCheckpoint.Load(Fixtures.Tiny(fixture));

    [Fact]
    public void MaskedImageModelingNeedsAMaskToken()
    {
        var e = Assert.Throws<NotSupportedException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.MaskedImageModeling));
        Assert.Contains("mask token", e.Message);
    }

    [Fact]
    public void ImageSizeMustBeAMultipleOfThePatchSize()
    {
        var e = Assert.Throws<NotSupportedException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { ImageHeight = 36, ImageWidth = 32 }));
        Assert.Contains("multiple of the patch size 8", e.Message);
    }

    [Fact]
    public void SegmentationNeedsFourOutIndicesAndADecodeHead()
    {
        var e = Assert.Throws<NotSupportedException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.SemanticSegmentation));
        Assert.Contains("4 out_indices", e.Message);

        var (config, tensors) = Load("cls_relpos");
        config.OutIndices = [1, 2, 3, 4];
        var e2 = Assert.Throws<InvalidDataException>(() => BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.SemanticSegmentation));
        Assert.Contains("decode_head", e2.Message);
    }

    [Fact]
    public void ClassificationNeedsAClassifier()
    {
        var e = Assert.Throws<InvalidDataException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("mim_shared"), BeitOnnxTask.ImageClassification));
        Assert.Contains("classifier.weight", e.Message);
    }

    [Fact]
    public void SegmentationLabelsOnlyForSegmentation()
    {
        Assert.Throws<NotSupportedException>(() => BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { SegmentationLabels = true }));
    }

    [Fact]
    public void MissingOrMisshapenTensorsAreNamed()
    {
        var (config, tensors) = Load("cls_relpos");
        tensors.Remove("beit.encoder.layer.2.attention.attention.value.bias");
        var e = Assert.Throws<InvalidDataException>(() => BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification));
        Assert.Contains("beit.encoder.layer.2.attention.attention.value.bias", e.Message);

        (config, tensors) = Load("cls_relpos");
        tensors["classifier.bias"] = TensorData.FromFloats(new float[7], 7);
        var e2 = Assert.Throws<InvalidDataException>(() => BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification));
        Assert.Contains("classifier.bias", e2.Message);
        Assert.Contains("[7]", e2.Message);
    }

    [Fact]
    public void AcceptsTransformersV5NamesAndBareBackboneNames()
    {
        // The same weights spelled as transformers v5 modules, and as a bare BeitModel save (no "beit." prefix).
        var (config, tensors) = Load("cls_relpos");
        var v5 = tensors.ToDictionary(
            kv => kv.Key.Replace("encoder.layer.", "layers.").Replace("attention.attention.query", "attention.q_proj")
                .Replace("intermediate.dense", "mlp.fc1").Replace("output.dense", "mlp.fc2"),
            kv => kv.Value);
        Assert.Contains("beit.layers.0.attention.q_proj.weight", v5.Keys);
        var bare = tensors.Where(kv => kv.Key.StartsWith("beit.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["beit.".Length..], kv => kv.Value);
        var io = Io("cls_relpos");
        using var s1 = new BeitOnnxSession(BeitOnnxExporter.ExportToBytes(config, v5, BeitOnnxTask.Features));
        using var s2 = new BeitOnnxSession(BeitOnnxExporter.ExportToBytes(config, bare, BeitOnnxTask.Features));
        AssertClose(output, "v5 names pooler_output", s1.Run(io["pixel_values"].ToFloatArray(), 2)["pooler_output"], io["pooler_output"]);
        AssertClose(output, "bare names pooler_output", s2.Run(io["pixel_values"].ToFloatArray(), 2)["pooler_output"], io["pooler_output"]);
    }

    [Fact]
    public void FileExportIsAtomicAndEqualsTheInMemoryExport()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir, "model.onnx");
        BeitOnnxExporter.Export(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification, path);
        Assert.Equal(BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification), File.ReadAllBytes(path));

        // A failing export leaves the previous file untouched and no temporary file behind.
        var before = File.ReadAllBytes(path);
        var (config, tensors) = Load("cls_relpos");
        tensors.Remove("classifier.weight");
        Assert.Throws<InvalidDataException>(() => BeitOnnxExporter.Export(config, tensors, BeitOnnxTask.ImageClassification, path));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["model.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));

        // A failure while writing (the target is a directory) also leaves nothing behind.
        string blocked = Path.Combine(dir, "blocked.onnx");
        Directory.CreateDirectory(blocked);
        Assert.ThrowsAny<IOException>(() => BeitOnnxExporter.Export(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification, blocked));
        Assert.Equal(["model.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void FusedGraphUsesOnnxRuntimeOperatorsAndStandardGraphDoesNot()
    {
        var fused = ModelProto.Parser.ParseFrom(BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification));
        var ops = fused.Graph.Node.Where(n => n.Domain == "com.microsoft").GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, ops["Attention"]);
        Assert.Equal(4, ops["BiasGelu"]);
        Assert.Equal(7, ops["SkipLayerNormalization"]); // 4 after attention + 3 between layers
        Assert.DoesNotContain(fused.Graph.Node, n => n.OpType is "FastGelu" or "Erf");
        Assert.Contains(fused.OpsetImport, o => o.Domain == "com.microsoft" && o.Version == 1);

        var standard = ModelProto.Parser.ParseFrom(BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { OperatorSet = BeitOnnxOperatorSet.Standard }));
        Assert.All(standard.Graph.Node, n => Assert.True(string.IsNullOrEmpty(n.Domain), $"{n.OpType} is in domain {n.Domain}"));
        Assert.Equal([("", 17L)], standard.OpsetImport.Select(o => (o.Domain, o.Version)));
        Assert.Equal(4, standard.Graph.Node.Count(n => n.OpType == "Erf"));
        Assert.Equal(9, standard.Graph.Node.Count(n => n.OpType == "LayerNormalization"));
        // Every initializer holds raw little-endian bytes and is used by some node.
        var used = standard.Graph.Node.SelectMany(n => n.Input).ToHashSet();
        Assert.All(standard.Graph.Initializer, t => { Assert.False(t.RawData.IsEmpty); Assert.Contains(t.Name, used); });
    }

    [Fact]
    public void MetadataDescribesTheExport()
    {
        using var session = new BeitOnnxSession(BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { ImageHeight = 48, ImageWidth = 40 }));
        Assert.Equal("ImageClassification", session.Metadata[BeitOnnxNames.MetadataTask]);
        Assert.Equal("48x40", session.Metadata[BeitOnnxNames.MetadataImageSize]);
        Assert.Equal("OnnxRuntimeFused", session.Metadata[BeitOnnxNames.MetadataOperatorSet]);
        var config = BeitConfig.FromJson(session.Metadata[BeitOnnxNames.MetadataConfig]);
        Assert.Equal("horse", config.LabelName(4));
        Assert.Equal((3, 48, 40), (session.NumChannels, session.ImageHeight, session.ImageWidth));
        Assert.Equal(["logits", "probabilities"], session.OutputNames);
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void BatchDimensionIsDynamic(BeitOnnxOperatorSet set)
    {
        var io = Io("cls_relpos");
        using var session = Session("cls_relpos", BeitOnnxTask.ImageClassification, set);
        var pixels = io["pixel_values"].ToFloatArray();
        int len = 3 * 32 * 32;
        // Batch of 3: image 1, image 0, image 1.
        var three = pixels[len..].Concat(pixels[..len]).Concat(pixels[len..]).ToArray();
        var logits = session.Run(three, 3)["logits"].ToFloatArray();
        var reference = io["logits"].ToFloatArray();
        var expected = reference[5..].Concat(reference[..5]).Concat(reference[5..]).ToArray();
        Assert.Equal(15, logits.Length);
        for (int i = 0; i < 15; i++) Assert.True(Math.Abs(logits[i] - expected[i]) <= Tolerance);
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void SegmentationRunsAtAnotherResolutionOnTheActualGrid(BeitOnnxOperatorSet set)
    {
        // 96×64 with patch 8 is a 12×8 grid (the checkpoint's is 8×8): logits at 4× the grid, labels at full resolution,
        // and both operator sets agree (the fused one differs only in the encoder).
        var io = Io("seg_uper");
        var pixels = io["pixel_values"].ToFloatArray();
        var tall = new float[2 * 3 * 96 * 64];
        for (int i = 0; i < 2 * 3; i++)
            for (int y = 0; y < 96; y++)
                Array.Copy(pixels, i * 64 * 64 + (y % 64) * 64, tall, i * 96 * 64 + y * 64, 64);
        var options = new BeitOnnxExportOptions { ImageHeight = 96, ImageWidth = 64, SegmentationLabels = true };
        using var session = Session("seg_uper", BeitOnnxTask.SemanticSegmentation, set, options);
        var r = session.Run(tall, 2);
        Assert.Equal([2L, 6, 48, 32], r["logits"].Shape); // 4× the patch grid
        Assert.Equal([2L, 96, 64], r["labels"].Shape);
        using var other = Session("seg_uper", BeitOnnxTask.SemanticSegmentation,
            set == BeitOnnxOperatorSet.Standard ? BeitOnnxOperatorSet.OnnxRuntimeFused : BeitOnnxOperatorSet.Standard,
            new BeitOnnxExportOptions { ImageHeight = 96, ImageWidth = 64 });
        Assert.True(TestMath.MaxAbsDiff(r["logits"], other.Run(tall, 2)["logits"]) <= Tolerance);
    }

    [Theory]
    [InlineData("cls_relpos", BeitOnnxTask.ImageClassification, BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData("cls_relpos", BeitOnnxTask.Features, BeitOnnxOperatorSet.Standard)]
    [InlineData("mim_shared", BeitOnnxTask.MaskedImageModeling, BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData("mim_shared", BeitOnnxTask.MaskedImageModeling, BeitOnnxOperatorSet.Standard)]
    [InlineData("seg_uper", BeitOnnxTask.SemanticSegmentation, BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData("seg_uper", BeitOnnxTask.SemanticSegmentation, BeitOnnxOperatorSet.Standard)]
    public void LoadsInOnnxRuntimeWithoutWarnings(string fixture, BeitOnnxTask task, BeitOnnxOperatorSet set)
    {
        var bytes = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny(fixture), task,
            new BeitOnnxExportOptions { OperatorSet = set, SegmentationLabels = task == BeitOnnxTask.SemanticSegmentation });
        string logId = $"no-warnings-{fixture}-{task}-{set}";
        foreach (var level in new[] { GraphOptimizationLevel.ORT_ENABLE_ALL, GraphOptimizationLevel.ORT_DISABLE_ALL })
        {
            using var options = new SessionOptions { LogId = logId, GraphOptimizationLevel = level, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING };
            using var session = new InferenceSession(bytes, options);
            Assert.NotEmpty(session.OutputNames);
        }
        var messages = OrtLogCapture.Messages(logId);
        foreach (var m in messages) output.WriteLine(m);
        Assert.Empty(messages);
    }

    [Theory]
    [InlineData(BeitOnnxOperatorSet.OnnxRuntimeFused)]
    [InlineData(BeitOnnxOperatorSet.Standard)]
    public void ClsPoolingFeaturesAreTheNormedClsToken(BeitOnnxOperatorSet set)
    {
        // mim_shared has use_mean_pooling = false: BeitModel ends with beit.layernorm and pools the CLS token.
        var io = Io("mim_shared");
        using var session = Session("mim_shared", BeitOnnxTask.Features, set);
        var r = session.Run(io["pixel_values"].ToFloatArray(), 2);
        var seq = r["last_hidden_state"].ToFloatArray();
        var pooled = r["pooler_output"].ToFloatArray();
        Assert.Equal([2L, 17, 32], r["last_hidden_state"].Shape);
        var weights = BeitCheckpoint.ReadTensors(Fixtures.Tiny("mim_shared"));
        var gamma = weights["beit.layernorm.weight"].ToFloatArray();
        var beta = weights["beit.layernorm.bias"].ToFloatArray();
        for (int b = 0; b < 2; b++)
        {
            Assert.Equal(seq.AsSpan(b * 17 * 32, 32).ToArray(), pooled.AsSpan(b * 32, 32).ToArray());
            // Every token went through beit.layernorm: undoing γ and β leaves zero mean and unit RMS.
            for (int t = 0; t < 17; t++)
            {
                var token = seq.AsSpan((b * 17 + t) * 32, 32).ToArray();
                var normalized = token.Select((v, i) => (v - beta[i]) / gamma[i]).ToArray();
                Assert.Equal(0, normalized.Average(), 3);
                Assert.Equal(1, Math.Sqrt(normalized.Select(v => v * v).Average()), 3);
            }
        }
    }

    [Fact]
    public void WarningCaptureSeesWarnings()
    {
        // Guards the test above: an unused initializer makes ONNX Runtime warn, and the capture must see it.
        var model = ModelProto.Parser.ParseFrom(BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification));
        model.Graph.Initializer.Add(new TensorProto { Name = "unused", DataType = 1, RawData = Google.Protobuf.ByteString.CopyFrom(new byte[4]) });
        using var options = new SessionOptions { LogId = "expect-warning" };
        using var session = new InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(model), options);
        Assert.Contains(OrtLogCapture.Messages("expect-warning"), m => m.Contains("unused"));
    }

    [Fact]
    public void MatchesTheHuggingFaceOnnxExportOnTheSameInputs()
    {
        var io = Io("cls_relpos");
        var pixels = io["pixel_values"].ToFloatArray();
        using var hf = new BeitOnnxSession(Path.Combine(Fixtures.Tiny("cls_relpos"), "model.onnx"));
        var hfLogits = hf.Run(pixels, 2)["logits"];
        AssertClose(output, "HF model.onnx vs HF PyTorch logits", hfLogits, io["logits"]);
        foreach (var set in new[] { BeitOnnxOperatorSet.OnnxRuntimeFused, BeitOnnxOperatorSet.Standard })
        {
            using var ours = Session("cls_relpos", BeitOnnxTask.ImageClassification, set);
            AssertClose(output, $"ours ({set}) vs HF model.onnx logits", ours.Run(pixels, 2)["logits"], hfLogits);
        }
    }
}
