using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>Reads a sharded checkpoint through its <c>*.index.json</c> (<c>weight_map</c>: tensor name → shard file), whatever the shard format.</summary>
internal static class ShardedCheckpoint
{
    /// <summary>
    /// Reads every shard the index names with <paramref name="readShard"/>, which must read one single-file checkpoint
    /// (never another index, so a <c>weight_map</c> naming an index, itself included, cannot recurse). Shard names must be
    /// plain file names in the index's folder, as transformers writes them. <paramref name="readShard"/> returns tensors,
    /// or only their dtypes and shapes; the shard file names are added, in order, to <paramref name="shardsRead"/> when given.
    /// </summary>
    /// <exception cref="InvalidDataException">The index is invalid or names a shard that is not a plain file name; the message names the index.</exception>
    /// <exception cref="FileNotFoundException">A shard the index names does not exist.</exception>
    public static Dictionary<string, T> Read<T>(string indexPath, Func<string, Dictionary<string, T>> readShard, List<string>? shardsRead = null)
    {
        var index = UntrustedJson.ReadObjectFile(indexPath, BeitLimits.MaxIndexFileBytes);
        var map = index["weight_map"] as JsonObject ?? throw new InvalidDataException($"'{indexPath}' has no weight_map object.");
        string dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        string self = Path.GetFileName(indexPath);
        var shards = new List<string>();
        foreach (var (tensor, node) in map)
        {
            string shard = UntrustedJson.Kind(node) == JsonValueKind.String ? node!.GetValue<string>()
                : throw new InvalidDataException($"'{indexPath}': weight_map entry '{tensor}' is not a file name string.");
            if (!shards.Contains(shard, StringComparer.Ordinal)) shards.Add(shard);
        }
        foreach (var shard in shards)
        {
            if (shard.Length == 0 || shard is "." or ".." || Path.GetFileName(shard) != shard || shard.Contains('\\') || shard.Contains('\0') || Path.IsPathRooted(shard))
                throw new InvalidDataException($"'{indexPath}' names shard '{shard}', which is not a plain file name in its folder.");
            if (string.Equals(shard, self, StringComparison.OrdinalIgnoreCase) || shard.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"'{indexPath}' names the index '{shard}' as a shard; shards must be weight files.");
            string path = Path.Combine(dir, shard);
            if (!File.Exists(path)) throw new FileNotFoundException($"'{indexPath}' names shard '{shard}', which does not exist.", path);
        }
        var result = new Dictionary<string, T>();
        foreach (var shard in shards)
        {
            foreach (var (k, v) in readShard(Path.Combine(dir, shard)))
            {
                if (!result.TryAdd(k, v)) throw new InvalidDataException($"'{indexPath}': tensor '{k}' appears in more than one shard.");
            }
            shardsRead?.Add(shard);
        }
        var missing = map.Select(kv => kv.Key).Where(k => !result.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"'{indexPath}' lists tensors its shards lack: {string.Join(", ", missing.Take(5))}.");
        return result;
    }
}
