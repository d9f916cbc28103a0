using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Hub;

/// <summary>
/// Hugging Face Hub model ids (<c>microsoft/beit-base-patch16-224</c>, <c>org/name@revision</c>) as local checkpoint
/// folders. Downloads follow huggingface_hub's protocol into its cache, which Python's <c>transformers</c> shares: a
/// model either side downloaded loads on the other with no network.
/// </summary>
/// <remarks>
/// Every API that takes a checkpoint folder also takes an id (an existing local path always wins), resolving it with
/// the default <see cref="BeitHubOptions"/>; call <see cref="Resolve"/> first for other options, progress or
/// cancellation.
/// </remarks>
public static class BeitHub
{
    // transformers' weight file names, in from_pretrained's order of preference.
    private static readonly string[] s_weightFiles =
        [SafeTensors.ModelFileName, SafeTensors.IndexFileName, PyTorchCheckpoint.ModelFileName, PyTorchCheckpoint.IndexFileName];

    /// <summary>Whether <paramref name="text"/> is a valid Hub model id, <c>org/name</c> or <c>org/name@revision</c> (whether or not a local path has that name).</summary>
    public static bool IsModelId(string? text) => HubModelId.TryParse(text, out _);

    /// <summary>
    /// The local folder of a checkpoint: <paramref name="modelIdOrPath"/> itself when a file or folder of that name
    /// exists, else the cache's <c>snapshots/&lt;commit&gt;</c> folder of the Hub model it names, downloaded if needed.
    /// Online, each file's metadata is checked with the Hub (a <c>HEAD</c> request), cached LFS files are re-hashed and
    /// a corrupt one fetched again; when the Hub cannot be reached, a complete cached copy is used. With
    /// <see cref="BeitHubOptions.Offline"/>, only the cache is read.
    /// </summary>
    /// <param name="modelIdOrPath">A local path, or <c>org/name</c>, or <c>org/name@revision</c> (a branch, tag or commit).</param>
    /// <param name="options">Endpoint, cache, token and offline mode; null takes them from the environment.</param>
    /// <param name="progress">Receives the bytes of each file as it downloads.</param>
    /// <param name="cancellationToken">Stops a download; what was written stays as <c>.incomplete</c> and is resumed next time.</param>
    /// <exception cref="FileNotFoundException">No such local path and not a model id; or the Hub (HTTP 404) or, offline, the cache lacks a file (the message names the repository, revision and file); or the Hub cannot be reached and the cache has no complete copy.</exception>
    /// <exception cref="UnauthorizedAccessException">The Hub refused access (HTTP 401/403): the repository is private, gated or absent; the message mentions <c>HF_TOKEN</c>.</exception>
    /// <exception cref="InvalidDataException">The Hub's answer is malformed, or a downloaded file's sha256 is not its etag twice over.</exception>
    public static string Resolve(string modelIdOrPath, BeitHubOptions? options = null, IProgress<BeitDownloadProgress>? progress = null,
                                 CancellationToken cancellationToken = default)
    {
        // The work is asynchronous I/O; running it on the pool keeps a caller's synchronization context out of it.
        return Task.Run(() => ResolveAsync(modelIdOrPath, options, progress, cancellationToken), cancellationToken).GetAwaiter().GetResult();
    }

    /// <summary>The asynchronous form of <see cref="Resolve"/>.</summary>
    /// <param name="modelIdOrPath">A local path, or <c>org/name</c>, or <c>org/name@revision</c>.</param>
    /// <param name="options">Endpoint, cache, token and offline mode; null takes them from the environment.</param>
    /// <param name="progress">Receives the bytes of each file as it downloads.</param>
    /// <param name="cancellationToken">Stops a download (it resumes next time).</param>
    public static async Task<string> ResolveAsync(string modelIdOrPath, BeitHubOptions? options = null, IProgress<BeitDownloadProgress>? progress = null,
                                                  CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelIdOrPath);
        if (File.Exists(modelIdOrPath) || Directory.Exists(modelIdOrPath)) return modelIdOrPath;
        if (!HubModelId.TryParse(modelIdOrPath, out var id))
            throw new FileNotFoundException(
                $"'{modelIdOrPath}' is neither an existing file or folder nor a Hugging Face model id (org/name or org/name@revision).", modelIdOrPath);
        return await ResolveIdAsync(id, options ?? new BeitHubOptions(), progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The entry points' one resolver call: an existing path, or a path that is no model id, comes back unchanged (so
    /// the caller's own not-found error stays); a model id comes back as its snapshot folder, with the default options.
    /// </summary>
    internal static string LocalPath(string path, BeitHubFiles files)
    {
        if (string.IsNullOrEmpty(path) || File.Exists(path) || Directory.Exists(path) || !HubModelId.TryParse(path, out var id)) return path;
        var options = new BeitHubOptions { Files = files };
        return Task.Run(() => ResolveIdAsync(id, options, null, default)).GetAwaiter().GetResult();
    }

    internal static async Task<string> ResolveIdAsync(HubModelId id, BeitHubOptions options, IProgress<BeitDownloadProgress>? progress, CancellationToken ct)
    {
        options.Validate();
        var cache = new HubCache(options.CacheDirectory, id);
        if (options.Offline) return ResolveFromCache(id, cache, options.Files, "offline mode (HF_HUB_OFFLINE)");
        // A commit never changes: when its snapshot is complete, there is nothing to ask the Hub (huggingface_hub does the same).
        if (HubModelId.IsCommitHash(id.Revision) && TryResolveFromCache(id, cache, options.Files, out var pinned, out _)) return pinned;
        try
        {
            return await DownloadAsync(id, cache, options, progress, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (e.StatusCode is null)
        {
            // No answer at all (no network, DNS, refused): like huggingface_hub, fall back to what the cache holds.
            if (TryResolveFromCache(id, cache, options.Files, out var folder, out string? missing)) return folder;
            // Not found anywhere we can look: the same exception a missing local folder gives, saying why.
            throw new FileNotFoundException(
                $"'{id}' is no local file or folder, and as a Hugging Face model id it could not be fetched: could not reach the Hub at " +
                $"{options.Endpoint} ({e.Message}), and the cache '{cache.Root}' has no complete copy ({missing}). Connect to the network, " +
                "set HF_ENDPOINT to a reachable mirror, or copy the model into the cache.", id.ToString(), e);
        }
        catch (HttpRequestException e)
        {
            // The Hub answered with an error status we have no better message for (5xx, 429, ...).
            throw new IOException(e.Message, e);
        }
    }

    private static async Task<string> DownloadAsync(HubModelId id, HubCache cache, BeitHubOptions options, IProgress<BeitDownloadProgress>? progress, CancellationToken ct)
    {
        var http = new HubHttp(options, id);
        string revision = id.EffectiveRevision;
        var config = (await http.HeadAsync(revision, BeitConfig.FileName, optional: false, ct).ConfigureAwait(false))!;
        string commit = config.Commit;
        if (revision != commit) cache.WriteRef(revision, commit);
        await FetchAsync(http, cache, config, BeitConfig.FileName, progress, options, ct).ConfigureAwait(false);

        // The other files are asked for at the commit, so they all come from the same revision of the repository.
        if (options.Files.HasFlag(BeitHubFiles.Preprocessor))
            await FetchOptionalAsync(http, cache, commit, BeitImageProcessor.ConfigFileName, progress, options, ct).ConfigureAwait(false);
        if (options.Files.HasFlag(BeitHubFiles.Weights))
        {
            string? found = null;
            foreach (string name in s_weightFiles)
            {
                if (await FetchOptionalAsync(http, cache, commit, name, progress, options, ct).ConfigureAwait(false) is not string path) continue;
                found = path;
                if (name.EndsWith(".index.json", StringComparison.Ordinal))
                {
                    foreach (string shard in ShardNames(path))
                    {
                        var shardMetadata = SameCommit((await http.HeadAsync(commit, shard, optional: false, ct).ConfigureAwait(false))!, commit, shard);
                        await FetchAsync(http, cache, shardMetadata, shard, progress, options, ct).ConfigureAwait(false);
                    }
                }
                break;
            }
            if (found is null)
                throw new FileNotFoundException(
                    $"The Hugging Face model '{id.Repository}' has no weights at revision '{revision}' ({commit}): none of {string.Join(", ", s_weightFiles)}.",
                    SafeTensors.ModelFileName);
        }
        return cache.Snapshot(commit);
    }

    private static async Task<string?> FetchOptionalAsync(HubHttp http, HubCache cache, string commit, string file,
                                                          IProgress<BeitDownloadProgress>? progress, BeitHubOptions options, CancellationToken ct)
    {
        var metadata = await http.HeadAsync(commit, file, optional: true, ct).ConfigureAwait(false);
        if (metadata is null)
        {
            if (http.LastMissingCommit is string missingAt) cache.MarkMissing(missingAt, file);
            return null;
        }
        return await FetchAsync(http, cache, SameCommit(metadata, commit, file), file, progress, options, ct).ConfigureAwait(false);
    }

    // Files asked for at a commit must come from it, or the snapshot folder we return would lack them.
    private static HubFileMetadata SameCommit(HubFileMetadata metadata, string commit, string file) =>
        metadata.Commit == commit ? metadata
            : throw new InvalidDataException($"The Hub answered for '{file}' at commit {commit} with X-Repo-Commit {metadata.Commit}.");

    /// <summary>
    /// Makes <paramref name="file"/> present in the snapshot of <paramref name="metadata"/>'s commit: the blob is
    /// reused when it verifies, else downloaded under the blob's lock into <c>blobs/&lt;etag&gt;.incomplete</c>
    /// (resumed when a previous attempt left one), checked, and only then renamed to its final name.
    /// </summary>
    private static async Task<string> FetchAsync(HubHttp http, HubCache cache, HubFileMetadata metadata, string file,
                                                 IProgress<BeitDownloadProgress>? progress, BeitHubOptions options, CancellationToken ct)
    {
        if (!HubCache.IsValidFileName(file)) throw new InvalidDataException($"'{file}' is not a file name the checkpoint reader accepts.");
        string blob = cache.Blob(metadata.Etag);
        if (HubCache.Verify(blob, metadata.Etag, metadata.Size)) return cache.LinkIntoSnapshot(metadata.Commit, file, metadata.Etag);

        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        using (await cache.LockAsync(metadata.Etag, options.LockTimeout, ct).ConfigureAwait(false))
        {
            // Another thread or process may have finished it while we waited.
            if (!HubCache.Verify(blob, metadata.Etag, metadata.Size))
            {
                HubCache.DeleteQuietly(blob);
                string partial = blob + ".incomplete";
                await http.DownloadAsync(metadata, file, partial, progress, ct).ConfigureAwait(false);
                if (!HubCache.Verify(partial, metadata.Etag, metadata.Size))
                {
                    // The resumed prefix (or the transfer) was corrupt: one more try, from the first byte.
                    File.Delete(partial);
                    await http.DownloadAsync(metadata, file, partial, progress, ct).ConfigureAwait(false);
                    if (!HubCache.Verify(partial, metadata.Etag, metadata.Size))
                    {
                        File.Delete(partial);
                        throw new InvalidDataException(
                            $"'{file}' downloaded from {metadata.Location.GetLeftPart(UriPartial.Path)} does not match its sha256 {metadata.Etag} (twice); it was not cached.");
                    }
                }
                // Not IO.AtomicFile: '<blob>.incomplete' is huggingface_hub's name for a partial download, which a later run
                // (ours or Python's) resumes from where it stopped, so it must outlive a failed attempt.
                File.Move(partial, blob, overwrite: true);
            }
        }
        return cache.LinkIntoSnapshot(metadata.Commit, file, metadata.Etag);
    }

    private static string ResolveFromCache(HubModelId id, HubCache cache, BeitHubFiles files, string why)
    {
        if (TryResolveFromCache(id, cache, files, out var folder, out string? missing)) return folder;
        throw new FileNotFoundException(
            $"The Hugging Face model '{id.Repository}' at revision '{id.EffectiveRevision}' is not in the cache '{cache.Root}' ({why}): missing {missing}.",
            missing);
    }

    /// <summary>
    /// The snapshot folder of <paramref name="id"/>'s revision when the cache holds every file <paramref name="files"/>
    /// asks for; otherwise false, with <paramref name="missing"/> naming the first thing lacking.
    /// </summary>
    private static bool TryResolveFromCache(HubModelId id, HubCache cache, BeitHubFiles files, out string folder, out string? missing)
    {
        folder = "";
        string revision = id.EffectiveRevision;
        string? commit = HubModelId.IsCommitHash(revision) ? revision : cache.ReadRef(revision);
        if (commit is null)
        {
            missing = $"refs/{revision} (the revision was never downloaded)";
            return false;
        }
        string snapshot = cache.Snapshot(commit);
        // A pointer whose blob is gone counts as missing.
        if (!HubCache.IsPresent(Path.Combine(snapshot, BeitConfig.FileName)))
        {
            missing = $"{BeitConfig.FileName} (snapshot {commit})";
            return false;
        }
        if (files.HasFlag(BeitHubFiles.Weights))
        {
            string? weights = s_weightFiles.Select(n => Path.Combine(snapshot, n)).FirstOrDefault(HubCache.IsPresent);
            if (weights is null)
            {
                missing = $"the weights ({string.Join(", ", s_weightFiles)}; snapshot {commit})";
                return false;
            }
            if (weights.EndsWith(".index.json", StringComparison.Ordinal) &&
                ShardNames(weights).FirstOrDefault(s => !HubCache.IsPresent(Path.Combine(snapshot, s))) is string shard)
            {
                missing = $"{shard} (snapshot {commit})";
                return false;
            }
        }
        missing = null;
        folder = snapshot;
        return true;
    }

    /// <summary>The distinct shard file names an <c>*.index.json</c>'s <c>weight_map</c> lists, each a plain file name.</summary>
    private static List<string> ShardNames(string indexPath)
    {
        var map = UntrustedJson.ReadObjectFile(indexPath, HubHttp.MaxJsonBytes)["weight_map"] as JsonObject;
        if (map is null) throw new InvalidDataException($"'{indexPath}' has no weight_map object.");
        var shards = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, value) in map)
        {
            string? shard = value is JsonValue v && v.TryGetValue(out string? s) ? s : null;
            if (shard is null || !HubCache.IsValidFileName(shard))
                throw new InvalidDataException($"'{indexPath}' names a shard that is not a plain file name in the repository's root folder.");
            if (seen.Add(shard)) shards.Add(shard);
            if (shards.Count > 10_000) throw new InvalidDataException($"'{indexPath}' lists more than 10000 shards.");
        }
        return shards;
    }
}
