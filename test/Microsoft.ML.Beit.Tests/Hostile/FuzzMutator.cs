using System.Text;
using System.Text.Json.Nodes;

namespace Beit.Tests.Hostile;

/// <summary>
/// Seeded mutations of test files, for fuzz tests: byte flips, interesting integers, truncation, splices, insertions and
/// deletions on bytes, and value swaps (null, huge, negative, wrong type), removals and duplicated keys on JSON. Each
/// mutation takes its own seed, so one failing mutation reproduces alone from (seed, index).
/// </summary>
internal sealed class FuzzMutator
{
    private static readonly long[] s_interestingIntegers =
        [0, 1, -1, 255, 256, 65535, int.MaxValue, int.MinValue, uint.MaxValue, 1L << 32, long.MaxValue, long.MinValue, 1_900_000_000];

    private static readonly string[] s_interestingJson =
    [
        "null", "0", "-1", "1", "1.5", "-2147483648", "2147483648", "1000000000", "1e300", "-1e300", "9223372036854775807",
        "18446744073709551616", "\"\"", "\"x\"", "\"1\"", "\"../../etc/passwd\"", "true", "false", "[]", "{}", "[null]",
        "[1,2]", "{\"a\":null}", "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
    ];

    private readonly Random _rng;

    /// <summary>The mutator for mutation <paramref name="index"/> of a run seeded with <paramref name="seed"/>.</summary>
    public FuzzMutator(int seed, int index) => _rng = new Random(unchecked(seed * 1_000_003 + index)); // HashCode.Combine differs per process

    /// <summary>A random integer in [0, <paramref name="max"/>), from this mutation's seed.</summary>
    public int Next(int max) => _rng.Next(max);

    /// <summary>A mutated copy of <paramref name="input"/>; <paramref name="what"/> describes the mutation.</summary>
    public byte[] MutateBytes(byte[] input, out string what)
    {
        var b = input.ToList();
        int rounds = 1 + _rng.Next(3);
        var parts = new List<string>();
        for (int r = 0; r < rounds; r++)
        {
            if (b.Count == 0) b.Add(0);
            int at = _rng.Next(b.Count);
            switch (_rng.Next(8))
            {
                case 0:
                    b[at] ^= (byte)(1 << _rng.Next(8));
                    parts.Add($"flip bit at {at}");
                    break;
                case 1:
                    b[at] = (byte)_rng.Next(256);
                    parts.Add($"random byte at {at}");
                    break;
                case 2:
                {
                    long v = s_interestingIntegers[_rng.Next(s_interestingIntegers.Length)];
                    int width = new[] { 1, 2, 4, 8 }[_rng.Next(4)];
                    var bytes = BitConverter.GetBytes(v);
                    for (int i = 0; i < width && at + i < b.Count; i++) b[at + i] = bytes[i];
                    parts.Add($"{width}-byte {v} at {at}");
                    break;
                }
                case 3:
                    b.RemoveRange(at, b.Count - at);
                    parts.Add($"truncate at {at}");
                    break;
                case 4:
                {
                    int len = Math.Min(1 + _rng.Next(64), b.Count - at);
                    b.RemoveRange(at, len);
                    parts.Add($"delete {len} at {at}");
                    break;
                }
                case 5:
                {
                    int len = 1 + _rng.Next(32);
                    var bytes = new byte[len];
                    _rng.NextBytes(bytes);
                    b.InsertRange(at, bytes);
                    parts.Add($"insert {len} random at {at}");
                    break;
                }
                case 6:
                {
                    // Splice: copy a chunk of the file over another place (repeats real structure in the wrong spot).
                    int from = _rng.Next(b.Count), len = Math.Min(1 + _rng.Next(256), b.Count - from);
                    var chunk = b.GetRange(from, len);
                    for (int i = 0; i < len && at + i < b.Count; i++) b[at + i] = chunk[i];
                    parts.Add($"splice {len} from {from} to {at}");
                    break;
                }
                default:
                {
                    int from = _rng.Next(b.Count), len = Math.Min(1 + _rng.Next(256), b.Count - from);
                    b.InsertRange(at, b.GetRange(from, len));
                    parts.Add($"duplicate {len} from {from} at {at}");
                    break;
                }
            }
        }
        what = string.Join("; ", parts);
        return b.ToArray();
    }

    /// <summary>
    /// A mutated copy of the JSON <paramref name="json"/>: one to three values swapped for hostile ones, keys removed or
    /// duplicated; now and then a byte-level mutation of the text instead.
    /// </summary>
    public string MutateJson(string json, out string what)
    {
        if (_rng.Next(8) == 0)
        {
            var bytes = MutateBytes(Encoding.UTF8.GetBytes(json), out var w);
            what = "text: " + w;
            return Encoding.UTF8.GetString(bytes);
        }
        var root = JsonNode.Parse(json)!;
        var parts = new List<string>();
        int rounds = 1 + _rng.Next(3);
        string? duplicate = null;
        for (int r = 0; r < rounds; r++)
        {
            var slots = new List<(JsonNode Parent, string? Key, int Index)>();
            Collect(root, slots);
            if (slots.Count == 0) break;
            var (parent, key, index) = slots[_rng.Next(slots.Count)];
            string where = parent.GetPath() + (key != null ? "." + key : $"[{index}]");
            int action = _rng.Next(10);
            if (action == 0 && parent is JsonObject po && key != null)
            {
                po.Remove(key);
                parts.Add($"remove {where}");
            }
            else if (action == 1 && parent is JsonObject && key != null)
            {
                duplicate = key;
                parts.Add($"duplicate key {where}");
            }
            else
            {
                string value = s_interestingJson[_rng.Next(s_interestingJson.Length)];
                var node = JsonNode.Parse(value);
                if (parent is JsonObject o) o[key!] = node;
                else ((JsonArray)parent)[index] = node;
                parts.Add($"{where} = {value}");
            }
        }
        string text = root.ToJsonString();
        if (duplicate != null && root is JsonObject && text.Length > 1)
        {
            // The same key twice at the top level: the second copy carries a different value.
            var encodedKey = System.Text.Json.JsonSerializer.Serialize(duplicate);
            text = "{" + encodedKey + ":" + s_interestingJson[_rng.Next(s_interestingJson.Length)] + (text.Length > 2 ? "," : "") + text[1..];
        }
        what = string.Join("; ", parts);
        return text;
    }

    private static void Collect(JsonNode node, List<(JsonNode, string?, int)> slots)
    {
        // Iterative walk: the fuzzer should not be the thing that recurses.
        var stack = new Stack<JsonNode>();
        stack.Push(node);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n is JsonObject o)
            {
                foreach (var (k, v) in o)
                {
                    slots.Add((o, k, -1));
                    if (v != null) stack.Push(v);
                }
            }
            else if (n is JsonArray a)
            {
                for (int i = 0; i < a.Count; i++)
                {
                    slots.Add((a, null, i));
                    if (a[i] != null) stack.Push(a[i]!);
                }
            }
        }
    }
}
