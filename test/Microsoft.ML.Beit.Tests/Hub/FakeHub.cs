using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Beit.Tests.Hub;

/// <summary>A repository the fake Hub serves: commits (file name → bytes) and named revisions (branches, tags).</summary>
internal sealed class FakeRepo
{
    public Dictionary<string, Dictionary<string, byte[]>> Commits { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Refs { get; } = new(StringComparer.Ordinal);
    /// <summary>A token the requests must carry; null for a public repository.</summary>
    public string? Token { get; init; }
    /// <summary>The repository's new name: requests get a relative redirect there, as the Hub does after a rename.</summary>
    public string? RenamedTo { get; init; }
    /// <summary>An error status every request gets (a Hub having a bad day).</summary>
    public int? FailWith { get; init; }

    /// <summary>Adds a commit (its hash derived from its content) and points <paramref name="revision"/> at it.</summary>
    public string AddCommit(string revision, Dictionary<string, byte[]> files)
    {
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        foreach (var (name, bytes) in files.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            sha1.AppendData(Encoding.UTF8.GetBytes(name));
            sha1.AppendData(bytes);
        }
        sha1.AppendData(Encoding.UTF8.GetBytes(revision));
        string commit = Convert.ToHexStringLower(sha1.GetHashAndReset());
        Commits[commit] = files;
        Refs[revision] = commit;
        return commit;
    }
}

/// <summary>One request the fake Hub saw.</summary>
internal sealed record FakeHubRequest(bool Storage, string Method, string Path, string? Range, string? Authorization);

/// <summary>
/// A fake Hugging Face Hub on 127.0.0.1 (Kestrel, random ports) speaking the part of the Hub's protocol that
/// huggingface_hub uses: <c>/{org}/{name}/resolve/{revision}/{file}</c> with <c>X-Repo-Commit</c>, git-sha1 ETags for
/// small files, and for LFS files (<c>*.safetensors</c>, <c>*.bin</c>) a 302 with <c>X-Linked-Etag</c> (sha256) and
/// <c>X-Linked-Size</c> to an absolute URL on a second "storage" listener, which honours <c>Range</c>. It can drop
/// connections mid-file and serve corrupt bytes, and records every request.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, byte[]> _lfs = new(StringComparer.Ordinal);
    private int _drops, _corruptions;
    private bool _disposed;

    private FakeHub(WebApplication app, Dictionary<string, FakeRepo> repos)
    {
        _app = app;
        Repos = repos;
    }

    public Dictionary<string, FakeRepo> Repos { get; }
    public Uri Endpoint { get; private set; } = null!;
    public Uri Storage { get; private set; } = null!;
    public ConcurrentQueue<FakeHubRequest> Requests { get; } = new();

    /// <summary>Storage responses to cut after <see cref="DropAfterBytes"/> bytes.</summary>
    public int DropNextTransfers { set => _drops = value; }
    public int DropAfterBytes { get; set; } = 50_000;
    /// <summary>How long storage waits before answering, so concurrent downloads overlap.</summary>
    public TimeSpan StorageDelay { get; set; }
    /// <summary>Storage responses to send with one byte flipped.</summary>
    public int CorruptNextTransfers { set => _corruptions = value; }

    public static async Task<FakeHub> StartAsync(Dictionary<string, FakeRepo> repos)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.Listen(IPAddress.Loopback, 0);
        });
        var app = builder.Build();
        var hub = new FakeHub(app, repos);
        foreach (var repo in repos.Values)
            foreach (var files in repo.Commits.Values)
                foreach (var (name, bytes) in files)
                    if (IsLfs(name)) hub._lfs[Sha256(bytes)] = bytes;
        app.Run(hub.HandleAsync);
        await app.StartAsync();
        var addresses = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToList();
        Assert.Equal(2, addresses.Count);
        hub.Endpoint = new Uri(addresses[0]);
        hub.Storage = new Uri(addresses[1]);
        return hub;
    }

    public static bool IsLfs(string file) => file.EndsWith(".safetensors", StringComparison.Ordinal) || file.EndsWith(".bin", StringComparison.Ordinal);

    public static string Sha256(byte[] bytes) => HubCacheLayout.Etag("x.safetensors", bytes);

    /// <summary>git's blob id: sha1 of <c>"blob {length}\0"</c> and the content.</summary>
    public static string GitSha1(byte[] bytes) => HubCacheLayout.Etag("x.json", bytes);

    public int Count(bool storage, string method, string pathContains) =>
        Requests.Count(r => r.Storage == storage && r.Method == method && r.Path.Contains(pathContains, StringComparison.Ordinal));

    private async Task HandleAsync(HttpContext ctx)
    {
        var request = ctx.Request;
        bool storage = ctx.Connection.LocalPort == Storage.Port;
        string? range = request.Headers.Range.Count > 0 ? request.Headers.Range.ToString() : null;
        string? auth = request.Headers.Authorization.Count > 0 ? request.Headers.Authorization.ToString() : null;
        Requests.Enqueue(new FakeHubRequest(storage, request.Method, request.Path.Value ?? "", range, auth));
        if (storage) await ServeStorageAsync(ctx);
        else await ServeHubAsync(ctx);
    }

    private async Task ServeHubAsync(HttpContext ctx)
    {
        var segments = (ctx.Request.Path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        var response = ctx.Response;
        if (segments.Length != 5 || segments[2] != "resolve")
        {
            response.StatusCode = 404;
            return;
        }
        string repoId = segments[0] + "/" + segments[1], revision = segments[3], file = segments[4];
        if (!Repos.TryGetValue(repoId, out var repo) ||
            (repo.Token != null && ctx.Request.Headers.Authorization.ToString() != "Bearer " + repo.Token))
        {
            // The Hub answers 401 for a repository that is absent or that the caller may not read.
            response.StatusCode = 401;
            response.Headers["X-Error-Code"] = "RepoNotFound";
            return;
        }
        if (repo.FailWith is int failure)
        {
            response.StatusCode = failure;
            return;
        }
        if (repo.RenamedTo is string target)
        {
            response.StatusCode = 307;
            response.Headers.Location = $"/{target}/resolve/{Uri.EscapeDataString(revision)}/{file}";
            return;
        }
        string? commit = repo.Commits.ContainsKey(revision) ? revision : repo.Refs.GetValueOrDefault(revision);
        if (commit is null)
        {
            response.StatusCode = 404;
            response.Headers["X-Error-Code"] = "RevisionNotFound";
            return;
        }
        response.Headers["X-Repo-Commit"] = commit;
        if (!repo.Commits[commit].TryGetValue(file, out var bytes))
        {
            response.StatusCode = 404;
            response.Headers["X-Error-Code"] = "EntryNotFound";
            return;
        }
        if (IsLfs(file))
        {
            string sha = Sha256(bytes);
            response.StatusCode = 302;
            response.Headers["X-Linked-Etag"] = $"\"{sha}\"";
            response.Headers["X-Linked-Size"] = bytes.Length.ToString();
            response.Headers.ETag = $"\"{GitSha1(Encoding.ASCII.GetBytes(sha))}\"";
            response.Headers.Location = new Uri(Storage, $"lfs/{sha}?file={Uri.EscapeDataString(file)}").AbsoluteUri;
            response.ContentLength = 0;
            return;
        }
        // The Hub's ETag for a small file is its git blob id, sent weak here to exercise the W/ stripping.
        response.Headers.ETag = $"W/\"{GitSha1(bytes)}\"";
        await ServeBytesAsync(ctx, bytes, corrupt: false);
    }

    private async Task ServeStorageAsync(HttpContext ctx)
    {
        var segments = (ctx.Request.Path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments.Length != 2 || segments[0] != "lfs" || !_lfs.TryGetValue(segments[1], out var bytes))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        bool corrupt = Interlocked.Decrement(ref _corruptions) >= 0;
        if (StorageDelay > TimeSpan.Zero) await Task.Delay(StorageDelay);
        await ServeBytesAsync(ctx, bytes, corrupt);
    }

    private async Task ServeBytesAsync(HttpContext ctx, byte[] bytes, bool corrupt)
    {
        var response = ctx.Response;
        long start = 0;
        string? range = ctx.Request.Headers.Range.Count > 0 ? ctx.Request.Headers.Range.ToString() : null;
        if (range != null)
        {
            Assert.StartsWith("bytes=", range);
            Assert.EndsWith("-", range);
            start = long.Parse(range["bytes=".Length..^1]);
            if (start >= bytes.Length)
            {
                response.StatusCode = 416;
                return;
            }
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {start}-{bytes.Length - 1}/{bytes.Length}";
        }
        response.ContentLength = bytes.Length - start;
        if (HttpMethods.IsHead(ctx.Request.Method)) return;
        var body = bytes.AsMemory((int)start);
        if (corrupt)
        {
            var copy = body.ToArray();
            copy[copy.Length / 2] ^= 0x5A;
            body = copy;
        }
        if (!storageOnly(ctx) || Interlocked.Decrement(ref _drops) < 0)
        {
            await response.Body.WriteAsync(body);
            return;
        }
        // Send part of the file, then cut the connection, as a flaky network would.
        await response.Body.WriteAsync(body[..Math.Min(DropAfterBytes, body.Length - 1)]);
        await response.Body.FlushAsync();
        // Let the bytes reach the client before the reset (a reset discards what the client has not yet read).
        await Task.Delay(300);
        ctx.Abort();

        bool storageOnly(HttpContext c) => c.Connection.LocalPort == Storage.Port;
    }

    /// <summary>Stops both listeners; the Hub is unreachable afterwards (connections are refused).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
