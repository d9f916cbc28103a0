using Microsoft.ML.Beit;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Hostile;

/// <summary>Crafted <c>config.json</c> and <c>preprocessor_config.json</c> files: typed errors naming the file and field, before anything is allocated.</summary>
public sealed class HostileConfigTests(ITestOutputHelper log) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static JsonObject TinyConfig() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Tiny("cls_relpos"), "config.json")))!.AsObject();

    /// <summary>Writes the tiny fixture's config with <paramref name="field"/> replaced by the raw JSON <paramref name="value"/>.</summary>
    private string WriteConfig(string field, string value) =>
        // JsonNode.Parse("null") is null, which JsonObject writes back as a JSON null.
        WriteConfig(o => o[field] = JsonNode.Parse(value));

    /// <summary>Writes the tiny fixture's config as changed by <paramref name="change"/>; returns its path.</summary>
    private string WriteConfig(Action<JsonObject> change)
    {
        var o = TinyConfig();
        change(o);
        string path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, o.ToJsonString());
        return path;
    }

    [Fact]
    public void TinyConfigLoads() => Assert.Equal(32, BeitConfig.Load(Fixtures.Tiny("cls_relpos")).HiddenSize);

    [Theory]
    [InlineData("hidden_size", "null")]
    [InlineData("hidden_size", "\"768\"")]
    [InlineData("hidden_size", "768.5")]
    [InlineData("hidden_size", "1e300")]
    [InlineData("hidden_size", "[768]")]
    [InlineData("num_hidden_layers", "null")]
    [InlineData("image_size", "null")]
    [InlineData("image_size", "[32, null]")]
    [InlineData("image_size", "[32, 64]")]
    [InlineData("patch_size", "{}")]
    [InlineData("layer_norm_eps", "null")]
    [InlineData("use_relative_position_bias", "null")]
    [InlineData("use_relative_position_bias", "\"true\"")]
    [InlineData("pool_scales", "null")]
    [InlineData("pool_scales", "[1, null]")]
    [InlineData("hidden_act", "null")]
    [InlineData("hidden_act", "7")]
    [InlineData("id2label", "{\"0\": null}")]
    [InlineData("id2label", "{\"zero\": \"cat\"}")]
    [InlineData("id2label", "{\"0\": \"cat\", \"00\": \"dog\"}")]
    [InlineData("label2id", "{\"cat\": null}")]
    [InlineData("label2id", "{\"cat\": \"0\"}")]
    [InlineData("num_labels", "null")]
    [InlineData("num_labels", "-3")]
    [InlineData("out_indices", "[\"4\"]")]
    public void NullOrMistypedFieldIsRefusedNamingFileAndField(string field, string value)
    {
        string path = WriteConfig(field, value);
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), path, field);
    }

    [Theory]
    [InlineData("image_size", "1000000000")]
    [InlineData("image_size", "8193")]
    [InlineData("num_labels", "1000000000")]
    [InlineData("num_hidden_layers", "1000000")]
    [InlineData("num_hidden_layers", "257")]
    [InlineData("hidden_size", "1000000000")]
    [InlineData("num_attention_heads", "100000")]
    [InlineData("intermediate_size", "1000000000")]
    [InlineData("vocab_size", "1000000000")]
    [InlineData("num_channels", "1000000")]
    [InlineData("auxiliary_channels", "1000000000")]
    [InlineData("auxiliary_num_convs", "1000000")]
    [InlineData("pool_scales", "[1, 2, 1000000]")]
    public void HugeArchitectureIsRefusedBeforeAllocating(string field, string value)
    {
        string path = WriteConfig(field, value);
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), path, field);
    }

    [Fact]
    public void OutFeaturesBeyondTheLayersAreRefused()
    {
        // Found by CheckpointFuzzTests (seed 4): one layer, but out_features still names stage4 through stage_names.
        WriteConfig(o =>
        {
            o["num_hidden_layers"] = 1;
            o.Remove("out_indices");
        });
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), "config.json", "out_features");
    }

    [Fact]
    public void TooManyPatchesAreRefused()
    {
        // 224 px with 1 px patches: 50,176 patches, whose relative-position index would have 2.5 G entries per layer.
        WriteConfig(o =>
        {
            o["image_size"] = 224;
            o["patch_size"] = 1;
        });
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), "config.json", "patches");
    }

    [Fact]
    public void TooManyParametersInTotalAreRefused()
    {
        // Each size is within its own bound; together they describe about 0.8 T parameters.
        WriteConfig(o =>
        {
            o["hidden_size"] = 16384;
            o["num_attention_heads"] = 128;
            o["intermediate_size"] = 65536;
            o["num_hidden_layers"] = 256;
        });
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), "config.json", "parameters");
    }

    [Fact]
    public void OversizedSegmentationHeadIsRefusedWhenASegmenterIsBuilt()
    {
        // A valid backbone (width 8192) whose UperNet head, of the same width, would need 3 G elements in one tensor.
        WriteConfig(o =>
        {
            o["hidden_size"] = 8192;
            o["num_attention_heads"] = 8;
        });
        var config = BeitConfig.Load(_dir);
        Bounded.Throws<InvalidDataException>(log,
            () => Microsoft.ML.Beit.Onnx.BeitOnnxExporter.ExportToBytes(config, new Dictionary<string, Microsoft.ML.Beit.Checkpoints.TensorData>(), Microsoft.ML.Beit.Onnx.BeitOnnxTask.SemanticSegmentation),
            "segmentation head", "decode_head");
    }

    [Fact]
    public void TooManyLabelsInId2LabelAreRefused()
    {
        WriteConfig(o =>
        {
            var id2 = new JsonObject();
            for (int i = 0; i < 100_001; i++) id2[i.ToString()] = "c" + i;
            o["id2label"] = id2;
            o.Remove("label2id");
        });
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), "config.json", "id2label");
    }

    [Fact]
    public void DuplicateKeyIsRefused()
    {
        string json = File.ReadAllText(Path.Combine(Fixtures.Tiny("cls_relpos"), "config.json")).TrimEnd().TrimEnd('}') + ", \"hidden_size\": 64}";
        File.WriteAllText(Path.Combine(_dir, "config.json"), json);
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), "config.json", "hidden_size");
    }

    [Fact]
    public void OversizedConfigFileIsRefusedBeforeReading()
    {
        string path = Path.Combine(_dir, "config.json");
        using (var f = File.Create(path)) f.SetLength(17L << 20);
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(_dir), path, "bytes");
    }

    // ------------------------------------------------------------------ preprocessor_config.json

    internal const string Preprocessor = """
        {"do_resize": true, "size": {"height": 256, "width": 256}, "resample": 3, "do_center_crop": true,
         "crop_size": {"height": 224, "width": 224}, "do_rescale": true, "rescale_factor": 0.00392156862745098,
         "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_reduce_labels": false}
        """;

    private string WritePreprocessor(string field, string value)
    {
        var o = JsonNode.Parse(Preprocessor)!.AsObject();
        o[field] = JsonNode.Parse(value);
        string path = Path.Combine(_dir, BeitImageProcessor.ConfigFileName);
        File.WriteAllText(path, o.ToJsonString());
        return path;
    }

    [Fact]
    public void PreprocessorControlLoadsAndNullMeansDefault()
    {
        WritePreprocessor("do_resize", "null");
        var p = BeitImageProcessor.FromPretrained(_dir);
        Assert.True(p.DoResize);
        Assert.Equal(new PixelSize(224, 224), p.CropSize);
    }

    [Theory]
    [InlineData("size", "{\"height\": null, \"width\": 224}")]
    [InlineData("size", "[224, null]")]
    [InlineData("size", "\"224\"")]
    [InlineData("size", "1000000000")]
    [InlineData("size", "{\"height\": 224, \"width\": 1e12}")]
    [InlineData("size", "{\"shortest_edge\": 100000}")]
    [InlineData("size", "{\"shortest_edge\": 224, \"longest_edge\": 1000000000}")]
    [InlineData("size", "{\"height\": -224, \"width\": 224}")]
    [InlineData("crop_size", "{\"height\": 224, \"width\": null}")]
    [InlineData("crop_size", "1000000000")]
    [InlineData("crop_size", "0")]
    [InlineData("resample", "\"lanczos5\"")]
    [InlineData("resample", "99")]
    [InlineData("resample", "[3]")]
    [InlineData("rescale_factor", "\"1/255\"")]
    [InlineData("image_mean", "[0.5, null, 0.5]")]
    [InlineData("image_mean", "[\"a\", 0.5, 0.5]")]
    [InlineData("image_std", "[0.5, 0.5]")]
    [InlineData("image_std", "{}")]
    [InlineData("do_resize", "\"yes\"")]
    [InlineData("do_reduce_labels", "1")]
    public void BadPreprocessorFieldIsRefusedNamingFileAndField(string field, string value)
    {
        string path = WritePreprocessor(field, value);
        Bounded.Throws<InvalidDataException>(log, () => BeitImageProcessor.FromPretrained(_dir), path, field);
    }

    [Fact]
    public void PreprocessorDuplicateKeyAndOversizedFileAreRefused()
    {
        string path = Path.Combine(_dir, BeitImageProcessor.ConfigFileName);
        File.WriteAllText(path, """{"do_resize": true, "do_resize": false}""");
        Bounded.Throws<InvalidDataException>(log, () => BeitImageProcessor.FromPretrained(_dir), path, "do_resize");
        using (var f = File.Create(path)) f.SetLength(2L << 20);
        Bounded.Throws<InvalidDataException>(log, () => BeitImageProcessor.FromPretrained(_dir), path, "bytes");
    }
}
