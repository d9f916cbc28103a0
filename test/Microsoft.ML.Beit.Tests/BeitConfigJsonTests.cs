using System.Text.Json.Nodes;
using Microsoft.ML.Beit;

namespace Beit.Tests;

/// <summary>BeitConfig's System.Text.Json mapping: snake_case keys, unknown keys kept as extension data, derived keys resolved.</summary>
public class BeitConfigJsonTests
{
    private const string WithExtras = """
        {"model_type": "beit", "hidden_size": 64, "num_attention_heads": 4, "image_size": [32, 32], "patch_size": 8,
         "transformers_version": "4.46.0", "torch_dtype": "float32", "_name_or_path": null, "semantic_out_indices": [3, 5],
         "nested": {"a": [1, 2.5, {"b": null}], "c": true}, "num_labels": 3, "segmentation_indices": [1, 2]}
        """;

    [Fact]
    public void UnknownKeysRoundTripAsExtensionDataAndKnownOnesDoNot()
    {
        var c = BeitConfig.FromJson(WithExtras);
        Assert.Equal(["_name_or_path", "nested", "semantic_out_indices", "torch_dtype", "transformers_version"],
            c.ExtraFields.Select(kv => kv.Key).Order(StringComparer.Ordinal));
        Assert.Equal(32, c.ImageSize);
        Assert.Equal([1, 2], c.OutIndices!);
        Assert.Equal(3, c.NumLabels);

        var written = JsonNode.Parse(c.ToJson())!.AsObject();
        var original = JsonNode.Parse(WithExtras)!.AsObject();
        foreach (var key in new[] { "transformers_version", "torch_dtype", "_name_or_path", "semantic_out_indices", "nested" })
            Assert.True(JsonNode.DeepEquals(original[key], written[key]), key);
        Assert.Equal("beit", (string?)written["model_type"]);
        Assert.Equal(32, (int)written["image_size"]!);
        Assert.False(written.ContainsKey("num_labels"));
        Assert.False(written.ContainsKey("segmentation_indices"));
        Assert.Equal("LABEL_2", (string?)written["id2label"]!["2"]);
        Assert.Equal(2, (int)written["label2id"]!["LABEL_2"]!);
        Assert.Equal(written.Select(kv => kv.Key).Order(StringComparer.Ordinal), written.Select(kv => kv.Key));

        // Writing what was read gives the same text again.
        Assert.Equal(c.ToJson(), BeitConfig.FromJson(c.ToJson()).ToJson());
    }

    [Fact]
    public void FixtureConfigKeepsEveryValueThroughARoundTrip()
    {
        string path = Path.Combine(Fixtures.Tiny("seg_uper"), "config.json");
        var original = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var written = JsonNode.Parse(BeitConfig.Load(path).ToJson())!.AsObject();
        foreach (var (key, value) in original)
        {
            if (key == "num_labels") continue; // transformers derives it from id2label
            Assert.True(JsonNode.DeepEquals(value, written[key]), $"{key}: {value?.ToJsonString()} became {written[key]?.ToJsonString()}");
        }
    }

    [Theory]
    [InlineData("""{"pool_scales": [1, null]}""", "field 'pool_scales' has an invalid value ([1,null]): expected an integer, found null")]
    [InlineData("""{"id2label": {"0": "cat", "00": "dog"}}""", "field 'id2label'")]
    [InlineData("""{"out_features": ["stage1", 2]}""", "field 'out_features'")]
    [InlineData("""{"label2id": {"cat": 1.5}}""", "field 'label2id' has an invalid value ({\"cat\":1.5}): expected an integer, found a fraction")]
    [InlineData("""{"weird key": 1, "hidden_act": null}""", "field 'hidden_act' has an invalid value (null): expected a string, found null")]
    public void ErrorsNameTheTopLevelField(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => BeitConfig.FromJson(json));
        Assert.Contains(expected, e.Message);
    }
}
