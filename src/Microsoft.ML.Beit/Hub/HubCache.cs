using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Beit.Hub;

/// <summary>
/// One repository's folder in the huggingface_hub cache, laid out as huggingface_hub's <c>file_download.py</c> writes
/// it, so Python and .NET read each other's downloads:
/// <c>models--org--name/blobs/&lt;etag&gt;</c> (the content), <c>snapshots/&lt;commit&gt;/&lt;file&gt;</c> (a relative
/// symlink to <c>../../blobs/&lt;etag&gt;</c>), <c>refs/&lt;revision&gt;</c> (the commit, no newline),
/// <c>.no_exist/&lt;commit&gt;/&lt;file&gt;</c> (an empty marker for a file the Hub said is absent) and the download locks
/// in <c>&lt;cache&gt;/.locks/models--org--name/&lt;etag&gt;.lock</c>.
/// </summary>
internal sealed partial class HubCache
{
    public HubCache(string cacheDirectory, HubModelId id)
    {
        ArgumentException.ThrowIfNullOrEmpty(cacheDirectory);
        Root = Path.GetFullPath(cacheDirectory);
        RepositoryFolder = Path.Combine(Root, id.CacheFolderName);
        LocksFolder = Path.Combine(Root, ".locks", id.CacheFolderName);
    }

    /// <summary>The cache root (<c>HF_HUB_CACHE</c>).</summary>
    public string Root { get; }

    /// <summary><c>&lt;root&gt;/models--org--name</c>.</summary>
    public string RepositoryFolder { get; }

    private string LocksFolder { get; }

    // Etags become file names: the Hub's are hex digests (git sha1, or sha256 for LFS); allow a little more, never a dot.
    [GeneratedRegex(@"^[A-Za-z0-9_-]{1,128}$", RegexOptions.CultureInvariant)]
    private static partial Regex EtagPattern();

    [GeneratedRegex(@"^[0-9a-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex Sha256Pattern();

    // Checkpoint file names we fetch: plain names in the repository's root folder.
    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$", RegexOptions.CultureInvariant)]
    private static partial Regex FileNamePattern();

    /// <summary>
    /// Whether <paramref name="path"/> is a file with content: .NET's <see cref="File.Exists"/> is true for a symlink
    /// whose blob is gone, and such a snapshot pointer must count as missing.
    /// </summary>
    public static bool IsPresent(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return false;
        return info.LinkTarget is null || info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    public static bool IsValidEtag(string etag) => EtagPattern().IsMatch(etag);

    /// <summary>An LFS file's etag is the sha256 of its content (huggingface_hub's <c>REGEX_SHA256</c>).</summary>
    public static bool IsSha256(string etag) => Sha256Pattern().IsMatch(etag);

    public static bool IsValidFileName(string name) => FileNamePattern().IsMatch(name) && !name.EndsWith('.');

    public string Blob(string etag) => Path.Combine(RepositoryFolder, "blobs", etag);

    public string Snapshot(string commit) => Path.Combine(RepositoryFolder, "snapshots", commit);

    public string LockFile(string etag) => Path.Combine(LocksFolder, etag + ".lock");

    private string Ref(string revision) => Path.Combine([RepositoryFolder, "refs", .. revision.Split('/')]);

    /// <summary>The commit <c>refs/&lt;revision&gt;</c> names, or null when there is no such ref.</summary>
    /// <exception cref="InvalidDataException">The ref holds something other than a commit hash.</exception>
    public string? ReadRef(string revision)
    {
        string path = Ref(revision);
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (info.Length > 256) throw new InvalidDataException($"Hugging Face cache ref '{path}' is {info.Length} bytes; a ref holds one commit hash.");
        string commit = File.ReadAllText(path).Trim();
        if (!HubModelId.IsCommitHash(commit)) throw new InvalidDataException($"Hugging Face cache ref '{path}' does not hold a commit hash.");
        return commit;
    }

    /// <summary>Points <c>refs/&lt;revision&gt;</c> at <paramref name="commit"/> atomically (temporary file, then rename).</summary>
    public void WriteRef(string revision, string commit)
    {
        string path = Ref(revision);
        if (File.Exists(path) && File.ReadAllText(path).Trim() == commit) return;
        WriteAtomically(path, Encoding.ASCII.GetBytes(commit));
    }

    /// <summary>Records that the Hub has no <paramref name="file"/> at <paramref name="commit"/>, as huggingface_hub does.</summary>
    public void MarkMissing(string commit, string file)
    {
        string path = Path.Combine(RepositoryFolder, ".no_exist", commit, file);
        if (!File.Exists(path)) WriteAtomically(path, []);
    }

    /// <summary>
    /// Makes <c>snapshots/&lt;commit&gt;/&lt;file&gt;</c> a relative symlink to the blob (huggingface_hub's
    /// <c>_create_symlink</c>), or a copy where the file system has no symlinks. A temporary link renamed into place
    /// means a reader never sees a missing or half-made pointer.
    /// </summary>
    public string LinkIntoSnapshot(string commit, string file, string etag)
    {
        string pointer = Path.Combine(Snapshot(commit), file);
        string blob = Blob(etag);
        string target = Path.GetRelativePath(Path.GetDirectoryName(pointer)!, blob);
        var existing = new FileInfo(pointer);
        if (existing.LinkTarget == target && IsPresent(pointer)) return pointer;
        IO.AtomicFile.Write(pointer, tmp =>
        {
            try
            {
                File.CreateSymbolicLink(tmp, target);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                File.Copy(blob, tmp, overwrite: true);
            }
        });
        return pointer;
    }

    /// <summary>
    /// Takes the download lock of <paramref name="etag"/>: a file opened with <see cref="FileShare.None"/>, which .NET
    /// implements with <c>flock</c> on Unix, the call Python's <c>filelock</c> makes on the same path, so .NET threads,
    /// .NET processes and Python processes exclude one another.
    /// </summary>
    /// <exception cref="TimeoutException">Another download held the lock for longer than <paramref name="timeout"/>.</exception>
    public async Task<FileStream> LockAsync(string etag, TimeSpan timeout, CancellationToken ct)
    {
        string path = LockFile(etag);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            }
            catch (IOException) when (clock.Elapsed < timeout)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new TimeoutException($"Waited {timeout.TotalSeconds:F0} s for the download lock '{path}', held by another thread or process fetching the same file.", e);
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="path"/> holds <paramref name="size"/> bytes and, for an LFS file (a sha256 etag),
    /// content whose sha256 is the etag.
    /// </summary>
    public static bool Verify(string path, string etag, long size)
    {
        var info = new FileInfo(path);
        if (!info.Exists || info.Length != size) return false;
        if (!IsSha256(etag)) return true;
        // Hashing BEiT-base's 350 MB takes a fraction of a second; an image-processor stage and a model stage resolving
        // the same id in one process hash it once, unless the file was rewritten in between.
        var stamp = (info.Length, info.LastWriteTimeUtc);
        if (s_verified.TryGetValue(path, out var seen) && seen == stamp) return true;
        if (Sha256Hex(path) != etag) return false;
        s_verified[path] = stamp;
        return true;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long Length, DateTime Written)> s_verified = new(StringComparer.Ordinal);

    public static string Sha256Hex(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public static void WriteAtomically(string path, byte[] content) => IO.AtomicFile.WriteAllBytes(path, content);

    public static void DeleteQuietly(string path)
    {
        try
        {
            if (File.Exists(path) || new FileInfo(path).LinkTarget != null) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
