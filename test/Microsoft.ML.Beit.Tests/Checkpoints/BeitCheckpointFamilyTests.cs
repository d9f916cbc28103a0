using System.Text.Json.Nodes;
using Beit.Tests.Estimators;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;
using Xunit.Abstractions;

namespace Beit.Tests.Checkpoints;

/// <summary>
/// The tiny <c>cls_relpos</c> fixture renamed into the data2vec-vision and timm namings (timm's q/k/v packed by
/// concatenation): each must read back as the same tensors and give bit-identical logits through the same export.
/// </summary>
public sealed class BeitCheckpointFamilyTests(ITestOutputHelper output)
{
    private static readonly string Original = Fixtures.Tiny("cls_relpos");
    private static string TimmPth => Path.Combine(Fixtures.Root, "..", "timm-beit", "cls_relpos_timm.pth");

    private static float[] Pixels() =>
        SafeTensors.Read(Path.Combine(Original, "io.safetensors"))["pixel_values"].ToFloatArray();

    private static TensorData Logits(byte[] onnx)
    {
        using var session = new BeitOnnxSession(onnx, new BeitOnnxSessionOptions { IntraOpNumThreads = 1 });
        return session.Run(Pixels(), 2)["logits"];
    }

    private static TensorData Logits(string folder) => Logits(BeitOnnxExporter.ExportToBytes(folder, BeitOnnxTask.ImageClassification));

    private static TensorData Logits(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors) =>
        Logits(BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification));

    private void AssertBitIdentical(string what, TensorData expected, TensorData actual)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        float max = expected.ToFloatArray().Zip(actual.ToFloatArray(), (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{what}: max abs diff {max:E2}");
        Assert.True(expected.Data.AsSpan().SequenceEqual(actual.Data), $"{what}: logits are not bit-identical (max abs diff {max})");
    }

    private static void AssertSameTensors(IReadOnlyDictionary<string, TensorData> expected, IReadOnlyDictionary<string, TensorData> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, t) in expected)
        {
            Assert.Equal(t.Shape, actual[name].Shape);
            Assert.True(t.Data.AsSpan().SequenceEqual(actual[name].Data), $"tensor {name} differs");
        }
    }

    /// <summary><c>cls_relpos</c> as transformers' <c>Data2VecVisionForImageClassification</c> would save it.</summary>
    private static string WriteData2VecFolder(string dir)
    {
        string folder = Path.Combine(dir, "data2vec");
        Directory.CreateDirectory(folder);
        var tensors = BeitCheckpoint.ReadTensors(Original).ToDictionary(
            kv => kv.Key.StartsWith("beit.", StringComparison.Ordinal) ? "data2vec_vision." + kv.Key["beit.".Length..] : kv.Key, kv => kv.Value);
        SafeTensors.Write(Path.Combine(folder, SafeTensors.ModelFileName), tensors);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Original, BeitConfig.FileName)))!.AsObject();
        config["model_type"] = "data2vec-vision";
        config["architectures"] = new JsonArray("Data2VecVisionForImageClassification");
        File.WriteAllText(Path.Combine(folder, BeitConfig.FileName), config.ToJsonString());
        return folder;
    }

    /// <summary>cls_relpos under timm's names, built here (independently of the Python-made .pth) by concatenating q, k, v.</summary>
    private static Dictionary<string, TensorData> TimmTensors()
    {
        var hf = BeitCheckpoint.ReadTensors(Original);
        var t = new Dictionary<string, TensorData>
        {
            ["cls_token"] = hf["beit.embeddings.cls_token"],
            ["patch_embed.proj.weight"] = hf["beit.embeddings.patch_embeddings.projection.weight"],
            ["patch_embed.proj.bias"] = hf["beit.embeddings.patch_embeddings.projection.bias"],
            ["fc_norm.weight"] = hf["beit.pooler.layernorm.weight"],
            ["fc_norm.bias"] = hf["beit.pooler.layernorm.bias"],
            ["head.weight"] = hf["classifier.weight"],
            ["head.bias"] = hf["classifier.bias"],
        };
        for (int i = 0; i < 4; i++)
        {
            string p = $"beit.encoder.layer.{i}.", a = p + "attention.attention.", b = $"blocks.{i}.";
            var q = hf[a + "query.weight"];
            t[b + "attn.qkv.weight"] = new TensorData(q.DType, [3 * q.Shape[0], q.Shape[1]],
                [.. q.Data, .. hf[a + "key.weight"].Data, .. hf[a + "value.weight"].Data]);
            t[b + "attn.q_bias"] = hf[a + "query.bias"];
            t[b + "attn.v_bias"] = hf[a + "value.bias"];
            t[b + "attn.relative_position_bias_table"] = hf[a + "relative_position_bias.relative_position_bias_table"];
            t[b + "attn.relative_position_index"] = TensorData.FromInt64s(new long[17 * 17], 17, 17);
            t[b + "attn.proj.weight"] = hf[p + "attention.output.dense.weight"];
            t[b + "attn.proj.bias"] = hf[p + "attention.output.dense.bias"];
            t[b + "norm1.weight"] = hf[p + "layernorm_before.weight"];
            t[b + "norm1.bias"] = hf[p + "layernorm_before.bias"];
            t[b + "norm2.weight"] = hf[p + "layernorm_after.weight"];
            t[b + "norm2.bias"] = hf[p + "layernorm_after.bias"];
            t[b + "mlp.fc1.weight"] = hf[p + "intermediate.dense.weight"];
            t[b + "mlp.fc1.bias"] = hf[p + "intermediate.dense.bias"];
            t[b + "mlp.fc2.weight"] = hf[p + "output.dense.weight"];
            t[b + "mlp.fc2.bias"] = hf[p + "output.dense.bias"];
            t[b + "gamma_1"] = hf[p + "lambda_1"];
            t[b + "gamma_2"] = hf[p + "lambda_2"];
        }
        return t;
    }

    private static BeitConfig WithEps(BeitConfig config, double eps)
    {
        var c = config.Clone();
        c.LayerNormEps = eps;
        return c;
    }

    [Fact]
    public void Data2VecVisionFolderGivesBitIdenticalLogits()
    {
        using var dir = new TempDir();
        string folder = WriteData2VecFolder(dir);
        Assert.Equal(BeitCheckpointFamily.Data2VecVision, BeitCheckpointFamilies.Detect(SafeTensors.Read(Path.Combine(folder, SafeTensors.ModelFileName))));
        AssertSameTensors(BeitCheckpoint.ReadTensors(Original), BeitCheckpoint.ReadTensors(folder));
        AssertBitIdentical("data2vec-vision folder", Logits(Original), Logits(folder));
    }

    [Fact]
    public void Data2VecVisionConvertsToABeitFolder()
    {
        using var dir = new TempDir();
        string folder = WriteData2VecFolder(dir), converted = Path.Combine(dir, "converted");
        File.WriteAllText(Path.Combine(folder, BeitImageProcessor.ConfigFileName), new BeitImageProcessor().ToJson());
        Assert.Equal(BeitCheckpointFamily.Data2VecVision, BeitCheckpoint.Convert(folder, converted));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(converted, BeitConfig.FileName)))!;
        Assert.Equal("beit", (string?)json["model_type"]);
        Assert.Equal("BeitForImageClassification", (string?)json["architectures"]![0]);
        Assert.All(SafeTensors.Read(Path.Combine(converted, SafeTensors.ModelFileName)).Keys, k => Assert.DoesNotContain("data2vec", k));
        Assert.Equal(File.ReadAllText(Path.Combine(folder, BeitImageProcessor.ConfigFileName)),
                     File.ReadAllText(Path.Combine(converted, BeitImageProcessor.ConfigFileName)));
        AssertBitIdentical("data2vec-vision converted", Logits(Original), Logits(converted));
        Assert.DoesNotContain(Directory.GetDirectories(dir), d => Path.GetFileName(d).StartsWith('.'));
    }

    [Fact]
    public void TimmPthNestedUnderModelConvertsToTheHuggingFaceTensors()
    {
        using var dir = new TempDir();
        string converted = Path.Combine(dir, "converted");
        Assert.Equal(BeitCheckpointFamily.Timm, BeitCheckpoint.Convert(TimmPth, converted));
        AssertSameTensors(BeitCheckpoint.ReadTensors(Original), BeitCheckpoint.ReadTensors(converted));

        var original = BeitConfig.Load(Original);
        var config = BeitConfig.Load(converted);
        Assert.Equal((4, 32, 4, 64, 8, 32), (config.NumHiddenLayers, config.HiddenSize, config.NumAttentionHeads, config.IntermediateSize, config.PatchSize, config.ImageSize));
        Assert.True(config.UseRelativePositionBias && !config.UseSharedRelativePositionBias && !config.UseAbsolutePositionEmbeddings);
        Assert.True(config.UseMeanPooling && config.LayerScaleInitValue > 0 && !config.UseMaskToken);
        Assert.Equal(1e-6, config.LayerNormEps); // timm's LayerNorm
        Assert.Equal(5, config.NumLabels);
        Assert.Equal(["BeitForImageClassification"], config.Architectures!);

        // The weights are the original's exactly, so with the original configuration the logits are the original's...
        AssertBitIdentical("timm .pth, original config", Logits(Original), Logits(original, BeitCheckpoint.ReadTensors(converted)));
        // ...and the converted folder runs timm's model: the original's weights with timm's epsilon.
        AssertBitIdentical("timm .pth, converted folder", Logits(WithEps(original, 1e-6), BeitCheckpoint.ReadTensors(Original)), Logits(converted));

        // timm's pretrained_cfg: BEiT v2 ImageNet statistics, shortest edge floor(32 / 0.9) = 35, center crop 32, bicubic.
        var processor = BeitImageProcessor.FromPretrained(converted);
        Assert.Equal([0.485, 0.456, 0.406], processor.ImageMean);
        Assert.Equal([0.229, 0.224, 0.225], processor.ImageStd);
        Assert.Equal(35, processor.Size.ShortestEdge);
        Assert.True(processor.DoCenterCrop);
        Assert.Equal(new PixelSize(32, 32), processor.CropSize);
        Assert.Equal(PillowResample.Bicubic, processor.Resample);
    }

    [Fact]
    public void TimmSafetensorsWithPackedQkvGiveBitIdenticalLogits()
    {
        using var dir = new TempDir();
        string timm = Path.Combine(dir, "timm"), converted = Path.Combine(dir, "converted");
        Directory.CreateDirectory(timm);
        SafeTensors.Write(Path.Combine(timm, SafeTensors.ModelFileName), TimmTensors());
        // Read in place (no config needed for the tensors), then converted with no timm config.json at all.
        AssertSameTensors(BeitCheckpoint.ReadTensors(Original), BeitCheckpoint.ReadTensors(timm));
        AssertBitIdentical("timm safetensors read in place", Logits(Original), Logits(BeitConfig.Load(Original), BeitCheckpoint.ReadTensors(timm)));
        Assert.Equal(BeitCheckpointFamily.Timm, BeitCheckpoint.Convert(timm, converted));
        AssertBitIdentical("timm safetensors converted", Logits(WithEps(BeitConfig.Load(Original), 1e-6), BeitCheckpoint.ReadTensors(Original)), Logits(converted));
        // No pretrained_cfg and no "beitv2" in the name: BEiT v1's 0.5 statistics.
        Assert.Equal([0.5, 0.5, 0.5], BeitImageProcessor.FromPretrained(converted).ImageMean);
    }

    [Fact]
    public void UnilmPretrainingStateDictConvertsWithTheSharedTableAndTheHeadNorm()
    {
        // mim_shared under unilm's pre-training names: mask_token, the shared rel_pos_bias table, norm before lm_head.
        string mim = Fixtures.Tiny("mim_shared");
        var hf = BeitCheckpoint.ReadTensors(mim);
        var timm = new Dictionary<string, TensorData>
        {
            ["cls_token"] = hf["beit.embeddings.cls_token"],
            ["mask_token"] = hf["beit.embeddings.mask_token"],
            ["patch_embed.proj.weight"] = hf["beit.embeddings.patch_embeddings.projection.weight"],
            ["patch_embed.proj.bias"] = hf["beit.embeddings.patch_embeddings.projection.bias"],
            ["rel_pos_bias.relative_position_bias_table"] = hf["beit.encoder.relative_position_bias.relative_position_bias_table"],
            ["norm.weight"] = hf["layernorm.weight"],
            ["norm.bias"] = hf["layernorm.bias"],
            ["lm_head.weight"] = hf["lm_head.weight"],
            ["lm_head.bias"] = hf["lm_head.bias"],
        };
        foreach (var (name, t) in TimmTensors().Where(kv => kv.Key.StartsWith("blocks.", StringComparison.Ordinal) && !kv.Key.Contains("relative_position", StringComparison.Ordinal)))
            timm[name] = t; // the block weights of cls_relpos stand in for mim_shared's: same shapes
        using var dir = new TempDir();
        string file = Path.Combine(dir, "beit_base_patch16_224_pt22k.safetensors"), converted = Path.Combine(dir, "converted");
        SafeTensors.Write(file, timm);
        BeitCheckpoint.Convert(file, converted);
        var config = BeitConfig.Load(converted);
        Assert.True(config.UseSharedRelativePositionBias && !config.UseRelativePositionBias && config.UseMaskToken && config.UseMeanPooling);
        Assert.Equal(64, config.VocabSize);
        Assert.Equal(["BeitForMaskedImageModeling"], config.Architectures!);
        var tensors = BeitCheckpoint.ReadTensors(converted);
        Assert.Equal(hf["layernorm.weight"].Data, tensors["layernorm.weight"].Data);
        Assert.False(tensors.ContainsKey("beit.layernorm.weight")); // transformers' conversion: the head's norm, mean pooling kept
        Assert.Equal(hf["beit.encoder.relative_position_bias.relative_position_bias_table"].Data,
                     tensors["beit.encoder.relative_position_bias.relative_position_bias_table"].Data);
        var onnx = BeitOnnxExporter.ExportToBytes(converted, BeitOnnxTask.MaskedImageModeling);
        using var session = new BeitOnnxSession(onnx, new BeitOnnxSessionOptions { IntraOpNumThreads = 1 });
        var logits = session.Run(Pixels(), 2, new bool[2 * 16])["logits"];
        Assert.Equal(new long[] { 2, 16, 64 }, logits.Shape);
        Assert.DoesNotContain(logits.ToFloatArray(), float.IsNaN);
    }

    [Fact]
    public void TimmWithoutRelativeTablesNeedsTheHeadCount()
    {
        using var dir = new TempDir();
        var tensors = TimmTensors().Where(kv => !kv.Key.Contains("relative_position", StringComparison.Ordinal)).ToDictionary();
        tensors["pos_embed"] = TensorData.FromFloats(Enumerable.Range(0, 17 * 32).Select(i => MathF.Sin(i)).ToArray(), 1, 17, 32);
        string file = Path.Combine(dir, "beit_abs.safetensors"), converted = Path.Combine(dir, "converted");
        SafeTensors.Write(file, tensors);
        var e = Assert.Throws<InvalidDataException>(() => BeitCheckpoint.Convert(file, converted));
        Assert.Contains("--num-heads", e.Message);
        Assert.Contains(file, e.Message);
        Assert.False(Directory.Exists(converted));

        BeitCheckpoint.Convert(file, converted, numAttentionHeads: 4);
        var config = BeitConfig.Load(converted);
        Assert.True(config.UseAbsolutePositionEmbeddings && !config.UseRelativePositionBias);
        Assert.Equal((4, 32), (config.NumAttentionHeads, config.ImageSize));
        Assert.Equal(tensors["pos_embed"].Data, BeitCheckpoint.ReadTensors(converted)["beit.embeddings.position_embeddings"].Data);
        Assert.Throws<InvalidDataException>(() => BeitCheckpoint.Convert(file, converted, numAttentionHeads: 3));
    }

    [Fact]
    public void UnknownTimmTensorsAreNamed()
    {
        using var dir = new TempDir();
        var tensors = TimmTensors();
        tensors["blocks.0.attn.mystery"] = TensorData.FromFloats([1f], 1);
        string file = Path.Combine(dir, "odd.safetensors");
        SafeTensors.Write(file, tensors);
        var e = Assert.Throws<InvalidDataException>(() => BeitCheckpoint.Convert(file, Path.Combine(dir, "out")));
        Assert.Contains("blocks.0.attn.mystery", e.Message);
        Assert.Contains(file, e.Message);
    }

    [Fact]
    public void TimmConfigIsNotTakenForAHuggingFaceConfig()
    {
        var e = Assert.Throws<InvalidDataException>(() => BeitConfig.Load(Path.Combine(Fixtures.Root, "..", "timm-beit")));
        Assert.Contains("beit convert", e.Message);
    }

    [Fact]
    public void BeitConvertCliWritesAFolderThatGivesTheSameLogits()
    {
        using var dir = new TempDir();
        string converted = Path.Combine(dir, "converted");
        var (code, stdout, stderr) = DotnetProcess.Run(DotnetProcess.Built("samples/Beit.Cli", "beit.dll"), ["convert", TimmPth, converted]);
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.Contains("Timm", stdout);
        Assert.True(File.Exists(Path.Combine(converted, BeitImageProcessor.ConfigFileName)));
        AssertBitIdentical("beit convert (timm .pth)", Logits(WithEps(BeitConfig.Load(Original), 1e-6), BeitCheckpoint.ReadTensors(Original)), Logits(converted));

        // A second run over an existing folder replaces its files; a bad input fails with a message and a non-zero code.
        Assert.Equal(0, DotnetProcess.Run(DotnetProcess.Built("samples/Beit.Cli", "beit.dll"), ["convert", Original, converted]).ExitCode);
        AssertBitIdentical("beit convert (Hugging Face folder)", Logits(Original), Logits(converted));
        var bad = DotnetProcess.Run(DotnetProcess.Built("samples/Beit.Cli", "beit.dll"), ["convert", Path.Combine(dir, "missing"), Path.Combine(dir, "x")]);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("missing", bad.Stderr + bad.Stdout);
    }
}
