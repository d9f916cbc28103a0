using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Hub;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Hub;

/// <summary>Tests that set huggingface_hub's variables in the process environment run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HubEnvironmentCollection
{
    public const string Name = "Hub environment";
}

/// <summary>Every API that takes a checkpoint folder also takes a model id, resolved with the environment's Hub settings.</summary>
[Collection(HubEnvironmentCollection.Name)]
public sealed class HubEntryPointTests
{
    /// <summary>The environment of a fresh user: this Hub, this cache, no token, online.</summary>
    internal static Dictionary<string, string?> Environment(Uri endpoint, string cache, bool offline = false) => HubRepos.Environment(endpoint, cache, offline);

    [Fact]
    public async Task EveryCheckpointEntryPoint_TakesAModelId()
    {
        using var cache = new TempDir();
        var repos = HubRepos.Create(out string main, out _);
        await using var hub = await FakeHub.StartAsync(repos);
        using var env = new EnvironmentScope(Environment(hub.Endpoint, cache));
        string snapshot = Path.Combine(cache, "models--microsoft--beit-base-patch16-224", "snapshots", main);
        string tiny = Fixtures.Tiny("cls_relpos");

        Assert.Equal("cat", BeitConfig.Load(HubRepos.Main).LabelName(0));
        Assert.Equal(BeitCheckpoint.ReadTensors(tiny).Count, BeitCheckpoint.ReadTensors(HubRepos.Main).Count);
        Assert.Equal("lion", BeitCheckpoint.Load(HubRepos.Main + "@v1").Config.LabelName(0));
        var processor = BeitImageProcessor.FromPretrained(HubRepos.Main);
        Assert.Equal(ResizeSize.Exact(32, 32), processor.Size);
        Assert.Equal(processor.Size, BeitImageProcessorEstimator.LoadProcessor(HubRepos.Main).Size);
        Assert.Equal(snapshot, BeitModelSource.FromPath(HubRepos.Main).CheckpointFolder);
        Assert.Equal(snapshot, BeitModelSource.FromCheckpoint(HubRepos.Main).CheckpointFolder);
        BeitModelSource implicitSource = HubRepos.Main;
        Assert.Equal(snapshot, implicitSource.CheckpointFolder);
        // The model exported from the id is the one exported from the fixture folder, byte for byte.
        Assert.Equal(BeitOnnxExporter.ExportToBytes(tiny, BeitOnnxTask.ImageClassification),
                     BeitOnnxExporter.ExportToBytes(HubRepos.Main, BeitOnnxTask.ImageClassification));
        // README's snippet, verbatim.
        var config = BeitConfig.Load("microsoft/beit-base-patch16-224");             // downloads once, then reads the cache
        string folder = BeitHub.Resolve("microsoft/beit-base-patch16-224@main",       // the local snapshot folder
            new BeitHubOptions { Offline = false },
            new Progress<BeitDownloadProgress>(p => Console.Error.Write($"\r{p.FileName} {p.BytesDownloaded}/{p.TotalBytes}")));
        Assert.Equal(snapshot, folder);
        Assert.Equal("cat", config.LabelName(0));
        // One download, however many entry points asked.
        Assert.Equal(1, hub.Count(true, "GET", FakeHub.Sha256(HubRepos.Weights)));

        // A folder path that does not exist and is no id keeps its old error.
        Assert.Throws<FileNotFoundException>(() => BeitConfig.Load(Path.Combine(cache, "no-such-folder")));
    }
}
