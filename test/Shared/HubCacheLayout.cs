using System.Security.Cryptography;
using System.Text;

namespace Beit.Tests;

/// <summary>
/// Lays out a huggingface_hub cache by hand, byte for byte as Python's huggingface_hub writes it
/// (<c>file_download.py</c>): <c>models--org--name/blobs/&lt;etag&gt;</c>, <c>snapshots/&lt;commit&gt;/&lt;file&gt;</c> as a
/// relative symlink <c>../../blobs/&lt;etag&gt;</c>, and <c>refs/main</c> holding the commit with no newline. The etag is
/// the sha256 for LFS files (weights) and git's blob sha1 for the others.
/// </summary>
internal static class HubCacheLayout
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";

    /// <summary>Copies <paramref name="files"/> (name → path) into <paramref name="cacheRoot"/> as revision <c>main</c> of <paramref name="repository"/>.</summary>
    public static string Write(string cacheRoot, string repository, IEnumerable<(string Name, string Source)> files, string commit = Commit)
    {
        string repo = Path.Combine(cacheRoot, "models--" + repository.Replace("/", "--"));
        string snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        foreach (var (name, source) in files)
        {
            byte[] bytes = File.ReadAllBytes(source);
            string etag = Etag(name, bytes);
            File.WriteAllBytes(Path.Combine(repo, "blobs", etag), bytes);
            File.CreateSymbolicLink(Path.Combine(snapshot, name), $"../../blobs/{etag}");
        }
        File.WriteAllBytes(Path.Combine(repo, "refs", "main"), Encoding.ASCII.GetBytes(commit));
        return snapshot;
    }

    /// <summary>The etag the Hub gives a file: sha256 for LFS (weights), git's blob sha1 otherwise.</summary>
    public static string Etag(string name, byte[] bytes) =>
        name.EndsWith(".safetensors", StringComparison.Ordinal) || name.EndsWith(".bin", StringComparison.Ordinal)
            ? Convert.ToHexStringLower(SHA256.HashData(bytes))
            : Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {bytes.Length}\0"), .. bytes]));
}
