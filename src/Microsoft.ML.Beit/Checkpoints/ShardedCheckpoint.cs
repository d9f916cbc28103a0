using System.Text.Json.Nodes;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>Reads a sharded checkpoint through its <c>*.index.json</c> (<c>weight_map</c>: tensor name → shard file), whatever the shard format.</summary>
internal static class ShardedCheckpoint
{
    /// <summary>
    /// Reads every shard the index names with <paramref name="readShard"/> (tensors, or only their dtypes and shapes) and
    /// checks that together they hold every tensor of the <c>weight_map</c>; the shard file names are added, in order, to
    /// <paramref name="shardsRead"/> when given.
    /// </summary>
    public static Dictionary<string, T> Read<T>(string indexPath, Func<string, Dictionary<string, T>> readShard, List<string>? shardsRead = null)
    {
        JsonObject index;
        try
        {
            index = JsonNode.Parse(File.ReadAllText(indexPath)) as JsonObject
                ?? throw new InvalidDataException($"'{indexPath}' is not a JSON object.");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"'{indexPath}' is not valid JSON: {e.Message}", e);
        }
        var map = index["weight_map"] as JsonObject ?? throw new InvalidDataException($"'{indexPath}' has no weight_map.");
        string dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var result = new Dictionary<string, T>();
        foreach (var shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct())
        {
            if (shard.Contains("..") || Path.IsPathRooted(shard))
                throw new InvalidDataException($"'{indexPath}' names shard '{shard}' outside its folder.");
            foreach (var (k, v) in readShard(Path.Combine(dir, shard))) result[k] = v;
            shardsRead?.Add(shard);
        }
        var missing = map.Select(kv => kv.Key).Where(k => !result.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"'{indexPath}' lists tensors its shards lack: {string.Join(", ", missing.Take(5))}.");
        return result;
    }
}
