using System.Diagnostics;
using Beit.Tests.Estimators;
using Xunit.Abstractions;

namespace Beit.Tests.Hub;

/// <summary><c>beit</c> with Hub model ids, run as the real tool against the fake Hub (through its environment).</summary>
public sealed class CliHubTests(ITestOutputHelper output)
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    private (int Code, string Stdout, string Stderr) Run(Dictionary<string, string?> env, params string[] args)
    {
        var sw = Stopwatch.StartNew();
        var result = DotnetProcess.Run(Beit, args, environment: env);
        output.WriteLine($"beit {string.Join(' ', args)} (HF_HUB_OFFLINE={env["HF_HUB_OFFLINE"] ?? "unset"}) → {result.ExitCode} in {sw.Elapsed.TotalSeconds:F2} s" +
                         (result.Stderr.Length > 0 ? ": " + result.Stderr.Trim() : ""));
        return result;
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Info_DownloadsAModelId_ThenPrintsTheSameOfflineWithTheServerStopped()
    {
        using var cache = new TempDir();
        var hub = await FakeHub.StartAsync(HubRepos.Create(out string main, out _));
        var online = Run(HubRepos.Environment(hub.Endpoint, cache), "info", HubRepos.Main);
        Assert.True(online.Code == 0, online.Stderr);
        Assert.Contains("BEiT: 4 layers, hidden 32, 4 heads, MLP 64", online.Stdout);
        Assert.Contains("Weights: ", online.Stdout);
        Assert.Contains(main, online.Stderr);
        Assert.Equal(1, hub.Count(true, "GET", FakeHub.Sha256(HubRepos.Weights)));

        await hub.DisposeAsync();
        var offline = Run(HubRepos.Environment(hub.Endpoint, cache, offline: true), "info", HubRepos.Main);
        Assert.True(offline.Code == 0, offline.Stderr);
        Assert.Equal(online.Stdout, offline.Stdout);

        // The other commands take the id too (here from the cache).
        string onnx = Path.Combine(cache, "model.onnx"), pixels = Path.Combine(cache, "pixels.safetensors");
        var export = Run(HubRepos.Environment(hub.Endpoint, cache, offline: true),
                         "export-onnx", HubRepos.Main, onnx, "--task", "image-classification");
        Assert.True(export.Code == 0, export.Stderr);
        Assert.True(new FileInfo(onnx).Length > 0);
        var preprocess = Run(HubRepos.Environment(hub.Endpoint, cache, offline: true),
                             "preprocess", Fixtures.Preproc("chelsea.png"), "--preprocessor-config", HubRepos.Main, "--out", pixels);
        Assert.True(preprocess.Code == 0, preprocess.Stderr);
        Assert.Contains("pixel_values [1,3,32,32]", preprocess.Stdout);

        var absent = Run(HubRepos.Environment(hub.Endpoint, cache, offline: true), "info", "acme/absent");
        Assert.Equal(1, absent.Code);
        Assert.Contains("acme/absent", absent.Stderr);
        Assert.Contains("offline", absent.Stderr);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task TwoProcesses_FetchingTheSameModel_DownloadEachFileOnce()
    {
        using var cache = new TempDir();
        await using var hub = await FakeHub.StartAsync(HubRepos.Create(out _, out _));
        // Slow storage, so that the second process arrives while the first is still downloading.
        hub.StorageDelay = TimeSpan.FromSeconds(1);
        var env = HubRepos.Environment(hub.Endpoint, cache);
        var runs = await Task.WhenAll(Task.Run(() => Run(env, "info", HubRepos.Main)), Task.Run(() => Run(env, "info", HubRepos.Main)));

        Assert.All(runs, r => Assert.True(r.Code == 0, r.Stderr));
        Assert.Equal(runs[0].Stdout, runs[1].Stdout);
        Assert.Equal(1, hub.Count(true, "GET", FakeHub.Sha256(HubRepos.Weights)));
        Assert.Equal(1, hub.Count(false, "GET", "/config.json"));
        Assert.Empty(Directory.EnumerateFiles(cache, "*.incomplete", SearchOption.AllDirectories));

        var denied = Run(env, "info", HubRepos.Private);
        Assert.Equal(1, denied.Code);
        Assert.Contains("HF_TOKEN", denied.Stderr);
    }
}
