using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Hub;
using Xunit.Abstractions;

namespace Beit.Tests.Hub;

/// <summary>
/// Downloads from a fake Hub into a temporary huggingface_hub cache: options are passed explicitly (never through the
/// process environment), so these tests run in parallel with the rest.
/// </summary>
public sealed class BeitHubTests(ITestOutputHelper output)
{
    private static BeitHubOptions Options(Uri endpoint, string cache, string? token = null, bool offline = false) => new()
    {
        Endpoint = endpoint, CacheDirectory = cache, Token = token, Offline = offline,
        NetworkTimeout = TimeSpan.FromSeconds(5), LockTimeout = TimeSpan.FromSeconds(60),
    };

    private static string RepoFolder(string cache, string repo = HubRepos.Main) => Path.Combine(cache, "models--" + repo.Replace("/", "--"));

    private static string WeightsSha => FakeHub.Sha256(HubRepos.Weights);

    /// <summary>An address where nothing listens: connections are refused at once.</summary>
    private static Uri ClosedEndpoint()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}");
    }

    private static void AssertNoLeftovers(string cache)
    {
        var leftovers = Directory.EnumerateFiles(cache, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".incomplete", StringComparison.Ordinal) || f.EndsWith(".tmp", StringComparison.Ordinal)).ToList();
        Assert.Empty(leftovers);
    }

    /// <summary>Runs <paramref name="body"/> with a fake Hub serving <see cref="HubRepos"/> (after <paramref name="configure"/>), an empty cache and options for both.</summary>
    private static Task WithHubAsync(Func<FakeHub, string, BeitHubOptions, Task> body, Action<Dictionary<string, FakeRepo>>? configure = null) =>
        WithCacheAsync(async cache =>
        {
            var repos = HubRepos.Create(out _, out _);
            configure?.Invoke(repos);
            await using var hub = await FakeHub.StartAsync(repos);
            await body(hub, cache, Options(hub.Endpoint, cache));
        });

    private static string CommitOf(FakeHub hub, string revision) => hub.Repos[HubRepos.Main].Refs[revision];

    private static async Task WithCacheAsync(Func<string, Task> body)
    {
        using var cache = new TempDir();
        await body(cache);
    }

    [Fact]
    public Task FreshDownload_ThenCacheHit_WithTheServerStopped() => WithHubAsync(async (hub, cache, options) =>
    {
        string main = CommitOf(hub, "main");
        var progress = new List<BeitDownloadProgress>();
        var sw = Stopwatch.StartNew();
        string folder = BeitHub.Resolve(HubRepos.Main, options, new SyncProgress<BeitDownloadProgress>(progress.Add));
        double downloadMs = sw.Elapsed.TotalMilliseconds;

        Assert.Equal(Path.Combine(RepoFolder(cache), "snapshots", main), folder);
        Assert.Equal(HubRepos.Config, File.ReadAllBytes(Path.Combine(folder, "config.json")));
        Assert.Equal(HubRepos.Preprocessor, File.ReadAllBytes(Path.Combine(folder, "preprocessor_config.json")));
        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
        // safetensors exist, so pytorch_model.bin is neither asked for nor fetched.
        Assert.False(File.Exists(Path.Combine(folder, "pytorch_model.bin")));
        Assert.Equal(0, hub.Count(false, "HEAD", "pytorch_model.bin"));
        // Python's layout: relative symlinks into blobs/, named by sha256 (LFS) or git sha1, and refs/main = commit, no newline.
        Assert.Equal($"../../blobs/{WeightsSha}", new FileInfo(Path.Combine(folder, "model.safetensors")).LinkTarget);
        Assert.Equal($"../../blobs/{FakeHub.GitSha1(HubRepos.Config)}", new FileInfo(Path.Combine(folder, "config.json")).LinkTarget);
        Assert.Equal(Encoding.ASCII.GetBytes(main), File.ReadAllBytes(Path.Combine(RepoFolder(cache), "refs", "main")));
        // The weights came from the storage host the Hub redirected to (absolute), without a token.
        Assert.Equal(1, hub.Count(true, "GET", WeightsSha));
        Assert.All(hub.Requests, r => Assert.Null(r.Authorization));
        Assert.Equal(HubRepos.Weights.Length, progress.Last(p => p.FileName == "model.safetensors").BytesDownloaded);
        Assert.All(progress, p => Assert.Equal(HubRepos.Main, p.Repository));
        AssertNoLeftovers(cache);

        int requests = hub.Requests.Count;
        sw.Restart();
        Assert.Equal(folder, BeitHub.Resolve(HubRepos.Main, options));
        double onlineHitMs = sw.Elapsed.TotalMilliseconds;
        Assert.Equal(0, hub.Requests.Skip(requests).Count(r => r.Method == "GET"));

        await hub.DisposeAsync();
        sw.Restart();
        Assert.Equal(folder, BeitHub.Resolve(HubRepos.Main, options));
        double stoppedHitMs = sw.Elapsed.TotalMilliseconds;
        var (config, tensors) = BeitCheckpoint.Load(folder);
        Assert.Equal("cat", config.LabelName(0));
        Assert.Equal(SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), "model.safetensors")).Count, tensors.Count);
        output.WriteLine($"fresh download {downloadMs:F0} ms ({HubRepos.Weights.Length + HubRepos.Config.Length + HubRepos.Preprocessor.Length} bytes); " +
                         $"online cache hit {onlineHitMs:F0} ms; cache hit with the server stopped {stoppedHitMs:F0} ms");
    });

    [Fact]
    public Task RevisionPinning_BranchTagAndCommitGetTheirOwnSnapshots() => WithHubAsync(async (hub, cache, options) =>
    {
        string main = CommitOf(hub, "main");
        string v1 = CommitOf(hub, "v1");

        string tagged = BeitHub.Resolve(HubRepos.Main + "@v1", options);
        string latest = BeitHub.Resolve(HubRepos.Main, options);
        Assert.Equal(Path.Combine(RepoFolder(cache), "snapshots", v1), tagged);
        Assert.Equal(Path.Combine(RepoFolder(cache), "snapshots", main), latest);
        Assert.Equal("lion", BeitConfig.Load(tagged).LabelName(0));
        Assert.Equal("cat", BeitConfig.Load(latest).LabelName(0));
        Assert.Equal(v1, File.ReadAllText(Path.Combine(RepoFolder(cache), "refs", "v1")));
        // Both commits share one weights blob.
        Assert.Equal(1, hub.Count(true, "GET", WeightsSha));
        // After the tag resolved to its commit, every file was asked for at that commit.
        Assert.Contains(hub.Requests, r => r.Path == $"/{HubRepos.Main}/resolve/{v1}/model.safetensors");

        // A complete commit snapshot needs no network at all.
        int before = hub.Requests.Count;
        Assert.Equal(tagged, BeitHub.Resolve($"{HubRepos.Main}@{v1}", options));
        Assert.Equal(before, hub.Requests.Count);

        var e = Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve(HubRepos.Main + "@no-such-branch", options));
        Assert.Contains("no revision 'no-such-branch'", e.Message);
        Assert.Contains(HubRepos.Main, e.Message);
    });

    [Fact]
    public Task ADroppedConnection_IsResumedWithRange() => WithHubAsync(async (hub, cache, options) =>
    {
        string main = CommitOf(hub, "main");
        hub.DropAfterBytes = 50_000;
        hub.DropNextTransfers = 1;
        string folder = BeitHub.Resolve(HubRepos.Main, options);

        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
        var transfers = hub.Requests.Where(r => r.Storage && r.Method == "GET" && r.Path.Contains(WeightsSha)).ToList();
        Assert.Equal(2, transfers.Count);
        Assert.Null(transfers[0].Range);
        Assert.Equal("bytes=50000-", transfers[1].Range);
        AssertNoLeftovers(cache);
    });

    [Fact]
    public Task AnIncompleteFileLeftByAKilledProcess_IsResumed() => WithHubAsync(async (hub, cache, options) =>
    {
        string blobs = Path.Combine(RepoFolder(cache), "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, WeightsSha + ".incomplete"), HubRepos.Weights[..70_000]);

        string folder = BeitHub.Resolve(HubRepos.Main, options);

        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
        var transfer = Assert.Single(hub.Requests, r => r.Storage && r.Path.Contains(WeightsSha));
        Assert.Equal("bytes=70000-", transfer.Range);
        AssertNoLeftovers(cache);
    });

    [Fact]
    public Task ACorruptedBlob_IsDetectedAndFetchedAgain() => WithHubAsync(async (hub, cache, options) =>
    {
        string folder = BeitHub.Resolve(HubRepos.Main, options);
        string blob = Path.Combine(RepoFolder(cache), "blobs", WeightsSha);
        var bytes = File.ReadAllBytes(blob);
        bytes[1000] ^= 0xFF;
        File.WriteAllBytes(blob, bytes);

        Assert.Equal(folder, BeitHub.Resolve(HubRepos.Main, options));

        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(blob));
        Assert.Equal(2, hub.Count(true, "GET", WeightsSha));
    });

    [Fact]
    public Task ACorruptTransfer_IsFetchedAgain_AndNeverCachedWhenItStaysCorrupt() => WithHubAsync(async (hub, cache, options) =>
    {
        string blob = Path.Combine(RepoFolder(cache), "blobs", WeightsSha);

        hub.CorruptNextTransfers = 100;
        var e = Assert.Throws<InvalidDataException>(() => BeitHub.Resolve(HubRepos.Main, options));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("sha256", e.Message);
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(Path.Combine(RepoFolder(cache), "snapshots", HubRepos.Main, "model.safetensors")));
        AssertNoLeftovers(cache);

        hub.CorruptNextTransfers = 1;
        int before = hub.Count(true, "GET", WeightsSha);
        string folder = BeitHub.Resolve(HubRepos.Main, options);
        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
        Assert.Equal(before + 2, hub.Count(true, "GET", WeightsSha));
    });

    [Fact]
    public Task OfflineMode_ReadsOnlyTheCache_AndNamesWhatIsMissing() => WithHubAsync(async (hub, cache, options) =>
    {
        string main = CommitOf(hub, "main");

        var empty = Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve(HubRepos.Main, Options(hub.Endpoint, cache, offline: true)));
        Assert.Contains("offline", empty.Message);
        Assert.Contains(HubRepos.Main, empty.Message);
        Assert.Empty(hub.Requests);

        string folder = BeitHub.Resolve(HubRepos.Main, options);
        int requests = hub.Requests.Count;
        Assert.Equal(folder, BeitHub.Resolve(HubRepos.Main, Options(hub.Endpoint, cache, offline: true)));
        Assert.Equal(folder, BeitHub.Resolve($"{HubRepos.Main}@{main}", Options(hub.Endpoint, cache, offline: true)));
        Assert.Equal(requests, hub.Requests.Count);

        File.Delete(Path.Combine(RepoFolder(cache), "blobs", WeightsSha));
        var missing = Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve(HubRepos.Main, Options(hub.Endpoint, cache, offline: true)));
        Assert.Contains("model.safetensors", missing.Message);
        Assert.Contains("HF_HUB_OFFLINE", missing.Message);
        Assert.Equal(requests, hub.Requests.Count);
    });

    [Fact]
    public Task NotFoundAndUnauthorized_SayWhatAndWhy() => WithHubAsync(async (hub, cache, options) =>
    {

        var noWeights = Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve("acme/weightless", options));
        Assert.Contains("acme/weightless", noWeights.Message);
        Assert.Contains("main", noWeights.Message);
        Assert.Contains("model.safetensors", noWeights.Message);

        var noConfigRepo = new FakeRepo();
        noConfigRepo.AddCommit("main", new() { ["model.safetensors"] = HubRepos.Weights });
        hub.Repos["acme/no-config"] = noConfigRepo;
        var noConfig = Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve("acme/no-config@main", options));
        Assert.Contains("'config.json'", noConfig.Message);
        Assert.Contains("'acme/no-config'", noConfig.Message);
        Assert.Contains("revision 'main'", noConfig.Message);
        Assert.Contains("404", noConfig.Message);

        var denied = Assert.Throws<UnauthorizedAccessException>(() => BeitHub.Resolve(HubRepos.Private, options));
        Assert.Contains("HF_TOKEN", denied.Message);
        Assert.Contains(HubRepos.Private, denied.Message);
        Assert.Contains("401", denied.Message);
        var wrong = Assert.Throws<UnauthorizedAccessException>(() => BeitHub.Resolve(HubRepos.Private, Options(hub.Endpoint, cache, token: "hf_wrong")));
        Assert.Contains("HF_TOKEN", wrong.Message);

        string folder = BeitHub.Resolve(HubRepos.Private, Options(hub.Endpoint, cache, token: HubRepos.Token));
        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
        // The token goes to the Hub, never to the storage host it redirects to.
        Assert.Contains(hub.Requests, r => !r.Storage && r.Authorization == "Bearer " + HubRepos.Token);
        Assert.All(hub.Requests.Where(r => r.Storage), r => Assert.Null(r.Authorization));
    });

    [Trait("Category", "Slow")]
    [Fact]
    public Task Cancellation_StopsTheDownload_AndLeavesNoBlob() => WithHubAsync(async (hub, cache, options) =>
    {
        hub.StorageDelay = TimeSpan.FromSeconds(3);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => BeitHub.ResolveAsync(HubRepos.Main, options, null, cancel.Token));
        Assert.False(File.Exists(Path.Combine(RepoFolder(cache), "blobs", WeightsSha)));

        hub.StorageDelay = TimeSpan.Zero;
        string folder = BeitHub.Resolve(HubRepos.Main, options);
        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
    });

    [Fact]
    public Task AServerError_IsAnIOExceptionNamingTheFile() => WithHubAsync((hub, cache, options) =>
    {
        var e = Assert.Throws<IOException>(() => BeitHub.Resolve("acme/broken", options));
        Assert.Contains("503", e.Message);
        Assert.Contains("config.json", e.Message);
        Assert.Contains("acme/broken", e.Message);
        return Task.CompletedTask;
    }, repos => repos["acme/broken"] = new FakeRepo { FailWith = 503 });

    [Fact]
    public Task FourThreads_FetchingTheSameModel_DownloadEachFileOnce() => WithHubAsync(async (hub, cache, options) =>
    {
        string main = CommitOf(hub, "main");
        using var start = new Barrier(4);
        var folders = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait();
            return BeitHub.Resolve(HubRepos.Main, options);
        })));

        Assert.All(folders, f => Assert.Equal(Path.Combine(RepoFolder(cache), "snapshots", main), f));
        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folders[0], "model.safetensors")));
        Assert.Equal(1, hub.Count(true, "GET", WeightsSha));
        Assert.Equal(1, hub.Count(false, "GET", "/config.json"));
        Assert.Equal(4, hub.Count(false, "HEAD", "/config.json"));
        AssertNoLeftovers(cache);
    });

    [Fact]
    public Task ShardedAndPyTorchCheckpoints_FetchTheirWeightFiles() => WithHubAsync(async (hub, cache, options) =>
    {
        var expected = BeitCheckpoint.ReadTensors(Fixtures.Tiny("cls_relpos"));

        string sharded = BeitHub.Resolve("acme/sharded-beit", options);
        Assert.True(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")));
        Assert.True(File.Exists(Path.Combine(sharded, "model-00002-of-00002.safetensors")));
        var tensors = BeitCheckpoint.ReadTensors(sharded);
        Assert.Equal(expected.Keys.Order(), tensors.Keys.Order());
        Assert.All(expected, kv => Assert.Equal(kv.Value.Data, tensors[kv.Key].Data));
        // huggingface_hub's marker for files the Hub said are absent.
        Assert.True(Directory.EnumerateFiles(Path.Combine(RepoFolder(cache, "acme/sharded-beit"), ".no_exist"), "model.safetensors", SearchOption.AllDirectories).Any());

        string bin = BeitHub.Resolve("acme/bin-beit", options);
        Assert.Equal(HubRepos.BinWeights, File.ReadAllBytes(Path.Combine(bin, "pytorch_model.bin")));
        Assert.Equal(expected.Count, BeitCheckpoint.ReadTensors(bin).Count);
    });

    [Fact]
    public Task ARenamedRepository_FollowsTheHubsRelativeRedirect() => WithHubAsync(async (hub, cache, options) =>
    {
        string main = CommitOf(hub, "main");
        string folder = BeitHub.Resolve("old-name/beit", options);
        Assert.Equal(Path.Combine(RepoFolder(cache, "old-name/beit"), "snapshots", main), folder);
        Assert.Equal(HubRepos.Weights, File.ReadAllBytes(Path.Combine(folder, "model.safetensors")));
    });

    [Fact]
    public Task ACacheLaidOutByPython_LoadsWithNoServer() => WithCacheAsync(cache =>
    {
        string tiny = Fixtures.Tiny("cls_relpos");
        string snapshot = HubCacheLayout.Write(cache, HubRepos.Main,
            [("config.json", Path.Combine(tiny, "config.json")), ("model.safetensors", Path.Combine(tiny, "model.safetensors"))]);
        var closed = ClosedEndpoint();

        Assert.Equal(snapshot, BeitHub.Resolve(HubRepos.Main, Options(closed, cache, offline: true)));
        Assert.Equal(snapshot, BeitHub.Resolve(HubRepos.Main, Options(closed, cache)));
        Assert.Equal(snapshot, BeitHub.Resolve($"{HubRepos.Main}@{HubCacheLayout.Commit}", Options(closed, cache)));
        var (config, tensors) = BeitCheckpoint.Load(snapshot);
        Assert.Equal(BeitConfig.Load(tiny).ToJson(), config.ToJson());
        Assert.Equal(BeitCheckpoint.ReadTensors(tiny).Count, tensors.Count);

        // Not in the cache, and no Hub to ask: the message says both.
        var e = Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve("acme/absent", Options(closed, cache)));
        Assert.Contains("could not reach", e.Message);
        Assert.Contains("no local file or folder", e.Message);
        Assert.Contains("acme/absent", e.Message);
        return Task.CompletedTask;
    });

    [Fact]
    public void AnExistingLocalPath_WinsOverAModelIdOfTheSameName()
    {
        string org = "hubtest-" + Guid.NewGuid().ToString("N")[..8];
        string relative = org + "/beit";
        try
        {
            Directory.CreateDirectory(relative);
            foreach (var f in Directory.GetFiles(Fixtures.Tiny("cls_relpos"))) File.Copy(f, Path.Combine(relative, Path.GetFileName(f)));
            Assert.True(BeitHub.IsModelId(relative));
            Assert.Equal(relative, BeitHub.Resolve(relative, Options(ClosedEndpoint(), "/nonexistent-cache", offline: true)));
            Assert.Equal("cat", BeitConfig.Load(relative).LabelName(0));
        }
        finally
        {
            Directory.Delete(org, recursive: true);
        }
    }

    [Theory]
    [InlineData("microsoft/beit-base-patch16-224", true)]
    [InlineData("microsoft/beit-base-patch16-224@main", true)]
    [InlineData("microsoft/beit-base-patch16-224@v1.0", true)]
    [InlineData("microsoft/beit-base-patch16-224@refs/pr/1", true)]
    [InlineData("microsoft/beit-base-patch16-224@0123456789abcdef0123456789abcdef01234567", true)]
    [InlineData("facebook/data2vec-vision-base-ft1k", true)]
    [InlineData("beit-base", false)]
    [InlineData("a/b/c", false)]
    [InlineData("/abs/path", false)]
    [InlineData("../up", false)]
    [InlineData("org/..", false)]
    [InlineData("org/na..me", false)]
    [InlineData("org/na--me", false)]
    [InlineData("org/name.git", false)]
    [InlineData("org/-name", false)]
    [InlineData("org/name@", false)]
    [InlineData("org/name@../../etc", false)]
    [InlineData("org/name@/main", false)]
    [InlineData("org/name@main/", false)]
    [InlineData("org/name@a@b", false)]
    [InlineData("org/name@main.lock", false)]
    [InlineData("org\\name", false)]
    [InlineData("org/näme", false)]
    [InlineData("org/name with space", false)]
    [InlineData("C:/models", false)]
    public void ModelIds_AreValidatedStrictly(string text, bool valid)
    {
        Assert.Equal(valid, BeitHub.IsModelId(text));
        if (!valid && !File.Exists(text) && !Directory.Exists(text))
            Assert.Throws<FileNotFoundException>(() => BeitHub.Resolve(text, Options(ClosedEndpoint(), "/nonexistent-cache", offline: true)));
    }

    [Fact]
    public void Options_FollowHuggingFaceHubsEnvironmentVariables()
    {
        using var home = new TempDir();
        File.WriteAllText(Path.Combine(home, "token"), "hf_from_file\n");
        var env = new Dictionary<string, string?> { ["HF_HOME"] = home };
        var fromHome = new BeitHubOptions(n => env.GetValueOrDefault(n));
        Assert.Equal(Path.Combine(home, "hub"), fromHome.CacheDirectory);
        Assert.Equal("hf_from_file", fromHome.Token);
        Assert.Equal(BeitHubOptions.DefaultEndpoint, fromHome.Endpoint);
        Assert.False(fromHome.Offline);

        env["HUGGINGFACE_HUB_CACHE"] = "/legacy";
        Assert.Equal("/legacy", new BeitHubOptions(n => env.GetValueOrDefault(n)).CacheDirectory);
        env["HF_HUB_CACHE"] = "/hub-cache";
        env["HF_TOKEN"] = "hf_env";
        env["HF_ENDPOINT"] = "http://127.0.0.1:1234/";
        env["HF_HUB_OFFLINE"] = "1";
        var all = new BeitHubOptions(n => env.GetValueOrDefault(n));
        Assert.Equal("/hub-cache", all.CacheDirectory);
        Assert.Equal("hf_env", all.Token);
        Assert.Equal(new Uri("http://127.0.0.1:1234"), all.Endpoint);
        Assert.True(all.Offline);

        var xdg = new BeitHubOptions(n => n == "XDG_CACHE_HOME" ? "/xdg" : null);
        Assert.Equal(Path.Combine("/xdg", "huggingface", "hub"), xdg.CacheDirectory);
        Assert.Throws<ArgumentException>(() => new BeitHubOptions(n => n == "HF_ENDPOINT" ? "ftp://x" : null));
        Assert.Throws<ArgumentException>(() => BeitHub.Resolve(HubRepos.Main, new BeitHubOptions { Endpoint = null!, CacheDirectory = home }));
        Assert.Throws<ArgumentException>(() => BeitHub.Resolve(HubRepos.Main, new BeitHubOptions { CacheDirectory = " " }));
        Assert.Throws<ArgumentException>(() => BeitHub.Resolve(HubRepos.Main, new BeitHubOptions { CacheDirectory = home, Files = 0 }));
    }

    [Fact]
    public Task HostileHeaders_AreRejectedBeforeTheyBecomePaths() => WithHubAsync(async (hub, cache, options) =>
    {
        Assert.Null(HubHttp.Unquote(null));
        Assert.Equal("abc", HubHttp.Unquote("W/\"abc\""));
        Assert.False(HubCache.IsValidEtag("../../etc/passwd"));
        Assert.False(HubCache.IsValidEtag("a.b"));
        Assert.True(HubCache.IsValidEtag(WeightsSha));
        Assert.False(HubCache.IsValidFileName("../model.safetensors"));
        Assert.False(HubCache.IsValidFileName("sub/model.safetensors"));
        Assert.False(HubCache.IsValidFileName(".."));

        // Metadata declaring fewer bytes than storage sends: the download is refused, and nothing is written.
        var metadata = new HubFileMetadata(new string('a', 40), WeightsSha, 1000, new Uri(hub.Storage, $"lfs/{WeightsSha}"));
        var http = new HubHttp(options, HubModelIdFor(HubRepos.Main));
        string partial = Path.Combine(cache, "partial");
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => http.DownloadAsync(metadata, "model.safetensors", partial, null, default));
        Assert.Contains("Content-Length", e.Message);
        Assert.Equal(0, new FileInfo(partial).Length);
    });

    private static HubModelId HubModelIdFor(string text)
    {
        Assert.True(HubModelId.TryParse(text, out var id));
        return id;
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the calling thread, so a test sees every report before the call returns.</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    private readonly object _gate = new();

    public void Report(T value)
    {
        lock (_gate) report(value);
    }
}
