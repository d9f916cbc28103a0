using System.Text.Json;
using Beit.Tests.Estimators;
using Xunit.Abstractions;

namespace Beit.Tests.Checkpoints;

/// <summary><c>beit info</c>, run as the real tool in a separate process.</summary>
public sealed class CliInfoTests(ITestOutputHelper output)
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    private (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = DotnetProcess.Run(Beit, args);
        output.WriteLine($"beit {string.Join(' ', args)} → {result.ExitCode} in {clock.Elapsed.TotalSeconds:F1} s{(result.Stderr.Length > 0 ? ": " + result.Stderr.Trim() : "")}");
        return result;
    }

    [Fact]
    public void Json_HasTheDocumentedShape_WithEveryLabelAndTensor()
    {
        string checkpoint = Fixtures.Tiny("cls_relpos_bin");
        var (code, stdout, stderr) = Run("info", checkpoint, "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal(["source", "folder", "config", "preprocessor", "labels", "tensors", "parameters", "weights"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(checkpoint, root.GetProperty("source").GetString());
        Assert.Equal(checkpoint, root.GetProperty("folder").GetString());

        var config = root.GetProperty("config");
        Assert.Equal("beit", config.GetProperty("model_type").GetString());
        Assert.Equal((32, 32), (config.GetProperty("image_size").GetProperty("height").GetInt32(), config.GetProperty("image_size").GetProperty("width").GetInt32()));
        Assert.Equal((8, 4, 32, 4, 64, 5), (config.GetProperty("patch_size").GetInt32(), config.GetProperty("num_hidden_layers").GetInt32(),
                                             config.GetProperty("hidden_size").GetInt32(), config.GetProperty("num_attention_heads").GetInt32(),
                                             config.GetProperty("intermediate_size").GetInt32(), config.GetProperty("num_labels").GetInt32()));
        Assert.True(config.GetProperty("use_relative_position_bias").GetBoolean());
        Assert.False(config.GetProperty("use_shared_relative_position_bias").GetBoolean());
        Assert.False(config.GetProperty("use_absolute_position_embeddings").GetBoolean());
        Assert.True(config.GetProperty("use_mean_pooling").GetBoolean());
        Assert.Equal(0.1, config.GetProperty("layer_scale_init_value").GetDouble());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("preprocessor").ValueKind);

        Assert.Equal([(0, "cat"), (1, "dog"), (2, "bird"), (3, "fish"), (4, "horse")],
                     root.GetProperty("labels").EnumerateArray().Select(l => (l.GetProperty("id").GetInt32(), l.GetProperty("name").GetString()!)));
        var tensors = root.GetProperty("tensors").EnumerateArray()
            .ToDictionary(t => t.GetProperty("name").GetString()!, t => (t.GetProperty("dtype").GetString(), t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()));
        Assert.Equal(79, tensors.Count);
        Assert.Equal("F32", tensors["beit.layers.1.mlp.fc2.weight"].Item1);
        Assert.Equal([32L, 64L], tensors["beit.layers.1.mlp.fc2.weight"].Item2);
        Assert.Equal([5L, 32L], tensors["classifier.weight"].Item2);
        Assert.Equal(41_573, root.GetProperty("parameters").GetInt64());
        Assert.Equal(["pytorch_model.bin"], root.GetProperty("weights").EnumerateArray().Select(w => w.GetString()));
    }

    [Fact]
    public void Text_ListsLabelsAndTensors_AndABadPathIsOneLineOnStderrWithExitCode1()
    {
        var (code, stdout, stderr) = Run("info", Fixtures.Tiny("cls_relpos"));
        Assert.True(code == 0, stderr);
        Assert.Contains("Labels (5):", stdout);
        Assert.Matches(@"\n\s+4\s+horse\r?\n", stdout);
        Assert.Contains("Weights: model.safetensors; 79 tensors", stdout);
        Assert.Matches(@"\n\s+beit\.embeddings\.patch_embeddings\.projection\.weight\s+F32\s+\[32, 3, 8, 8\]\r?\n", stdout);

        // Text lists the first 20 labels (transformers' LABEL_i where config.json names none) and counts the rest.
        using var dir = new TempDir();
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Tiny("cls_relpos"), "config.json")))!.AsObject();
        config.Remove("id2label");
        config.Remove("label2id");
        config["num_labels"] = 25;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        File.Copy(Path.Combine(Fixtures.Tiny("cls_relpos"), "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        var many = Run("info", dir);
        Assert.True(many.Code == 0, many.Stderr);
        Assert.Contains("Labels (25):", many.Stdout);
        Assert.Matches(@"\n\s+19\s+LABEL_19\r?\n\s+… 5 more", many.Stdout);
        Assert.DoesNotContain("LABEL_20", many.Stdout);

        string absent = Path.Combine(Fixtures.Tiny("cls_relpos"), "no-such-folder");
        var bad = Run("info", absent);
        Assert.Equal(1, bad.Code);
        Assert.Equal("", bad.Stdout);
        string line = Assert.Single(bad.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("beit info: ", line);
        Assert.Contains(absent, line);
    }
}
