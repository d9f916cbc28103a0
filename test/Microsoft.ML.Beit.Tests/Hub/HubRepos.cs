using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests.Hub;

/// <summary>The repositories the fake Hub serves, made from the tiny fixtures.</summary>
internal static class HubRepos
{
    /// <summary>The child-process environment that points the Hub client at <paramref name="endpoint"/> with its cache in <paramref name="cache"/> and no token.</summary>
    public static Dictionary<string, string?> Environment(Uri endpoint, string cache, bool offline = false) => new()
    {
        ["HF_ENDPOINT"] = endpoint.AbsoluteUri,
        ["HF_HUB_CACHE"] = cache,
        ["HF_HOME"] = Path.Combine(cache, "home"),
        ["HF_HUB_OFFLINE"] = offline ? "1" : null,
        ["HF_TOKEN"] = null,
        ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_TOKEN_PATH"] = null,
    };

    public const string Main = "microsoft/beit-base-patch16-224";
    public const string Private = "acme/private-beit";
    public const string Token = "hf_fake_token_for_tests";

    public static byte[] Config => File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos"), "config.json"));
    public static byte[] Weights => File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos"), "model.safetensors"));
    public static byte[] BinWeights => File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos_bin"), "pytorch_model.bin"));

    /// <summary>A preprocessor configuration at the tiny model's 32×32.</summary>
    public static readonly byte[] Preprocessor = Encoding.UTF8.GetBytes("""
        {"do_resize": true, "size": {"height": 32, "width": 32}, "resample": 3, "do_center_crop": false, "do_rescale": true,
         "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
         "image_processor_type": "BeitImageProcessor"}
        """);

    /// <summary>The tiny configuration with its first label renamed, so two revisions can be told apart.</summary>
    public static byte[] ConfigWithFirstLabel(string label)
    {
        var json = JsonNode.Parse(Config)!.AsObject();
        json["id2label"]!["0"] = label;
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    /// <summary>
    /// <c>microsoft/beit-base-patch16-224</c>: <c>main</c> (config, preprocessor config, safetensors and a
    /// <c>pytorch_model.bin</c> that must not be fetched) and tag <c>v1</c>, an older commit whose first label is
    /// "lion"; plus a private, a sharded, a pytorch-only, a weightless and a renamed repository.
    /// </summary>
    public static Dictionary<string, FakeRepo> Create(out string mainCommit, out string v1Commit)
    {
        var main = new FakeRepo();
        v1Commit = main.AddCommit("v1", new() { ["config.json"] = ConfigWithFirstLabel("lion"), ["model.safetensors"] = Weights });
        mainCommit = main.AddCommit("main", new()
        {
            ["config.json"] = Config, ["preprocessor_config.json"] = Preprocessor,
            ["model.safetensors"] = Weights, ["pytorch_model.bin"] = BinWeights,
        });
        var privateRepo = new FakeRepo { Token = Token };
        privateRepo.AddCommit("main", new() { ["config.json"] = Config, ["model.safetensors"] = Weights });
        var sharded = new FakeRepo();
        sharded.AddCommit("main", ShardedFiles());
        var bin = new FakeRepo();
        bin.AddCommit("main", new() { ["config.json"] = Config, ["pytorch_model.bin"] = BinWeights });
        var weightless = new FakeRepo();
        weightless.AddCommit("main", new() { ["config.json"] = Config });
        return new(StringComparer.Ordinal)
        {
            [Main] = main,
            [Private] = privateRepo,
            ["acme/sharded-beit"] = sharded,
            ["acme/bin-beit"] = bin,
            ["acme/weightless"] = weightless,
            ["old-name/beit"] = new FakeRepo { RenamedTo = Main },
        };
    }

    /// <summary>The tiny weights split in two safetensors shards with a <c>model.safetensors.index.json</c>.</summary>
    public static Dictionary<string, byte[]> ShardedFiles()
    {
        var tensors = SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), "model.safetensors"));
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var files = new Dictionary<string, byte[]> { ["config.json"] = Config };
        var map = new JsonObject();
        for (int s = 0; s < 2; s++)
        {
            string shard = $"model-0000{s + 1}-of-00002.safetensors";
            var part = names.Where((_, i) => i % 2 == s).ToDictionary(n => n, n => tensors[n]);
            using var stream = new MemoryStream();
            SafeTensors.Write(stream, part, new Dictionary<string, string> { ["format"] = "pt" });
            files[shard] = stream.ToArray();
            foreach (var n in part.Keys) map[n] = shard;
        }
        files["model.safetensors.index.json"] = Encoding.UTF8.GetBytes(new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        return files;
    }
}
