using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Beit;

/// <summary>
/// Reads JSON from files we did not write (config.json, preprocessor_config.json, shard indexes, safetensors headers):
/// the size is checked before reading, duplicate keys are refused (System.Text.Json keeps the last one by default, so
/// two readers could disagree on a value), nesting is bounded, and every failure is an
/// <see cref="InvalidDataException"/> that names the file.
/// </summary>
public static class UntrustedJson
{
    private static readonly JsonDocumentOptions s_options = new()
    {
        AllowDuplicateProperties = false,
        MaxDepth = BeitLimits.MaxJsonDepth,
    };

    /// <summary>Reads the JSON object in <paramref name="path"/>, refusing files over <paramref name="maxBytes"/>.</summary>
    public static JsonObject ReadObjectFile(string path, long maxBytes)
    {
        // Regular files only (a FIFO would block forever, /dev/zero never ends), at most maxBytes.
        return ParseObject(IO.BeitFiles.ReadAllBytesData(path, maxBytes), path);
    }

    /// <summary>Parses a JSON object; <paramref name="source"/> names it in errors.</summary>
    public static JsonObject ParseObject(ReadOnlySpan<byte> utf8, string source)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(utf8, documentOptions: s_options);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{source}' is not valid JSON: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            // Depending on the runtime, a duplicate key surfaces from the node's dictionary rather than the parser.
            throw new InvalidDataException($"'{source}' is not valid JSON: {e.Message}", e);
        }
        var root = node as JsonObject ?? throw new InvalidDataException($"'{source}' is not a JSON object.");
        try
        {
            Materialize(root);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // Invalid UTF-8 or a lone surrogate escape in a key or string, found only when the text is decoded.
            throw new InvalidDataException($"'{source}' is not valid JSON: {e.Message}", e);
        }
        return root;
    }

    /// <summary>
    /// Decodes every key and string now, iteratively: JsonNode defers that, and would otherwise throw
    /// <see cref="InvalidOperationException"/> from wherever a caller first touches a bad one.
    /// </summary>
    private static void Materialize(JsonNode root)
    {
        var pending = new Stack<JsonNode>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            switch (pending.Pop())
            {
                case JsonObject o:
                    foreach (var (_, v) in o)
                        if (v != null) pending.Push(v);
                    break;
                case JsonArray a:
                    foreach (var v in a)
                        if (v != null) pending.Push(v);
                    break;
                case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                    _ = v.GetValue<string>();
                    break;
            }
        }
    }

    /// <summary>Parses a JSON object from text; <paramref name="source"/> names it in errors.</summary>
    public static JsonObject ParseObject(string json, string source) => ParseObject(System.Text.Encoding.UTF8.GetBytes(json), source);

    /// <summary>The kind of <paramref name="node"/>, with JSON <c>null</c> as <see cref="JsonValueKind.Null"/>.</summary>
    public static JsonValueKind Kind(JsonNode? node) => node?.GetValueKind() ?? JsonValueKind.Null;

    /// <summary>The value as an <see cref="int"/> in [<paramref name="min"/>, <paramref name="max"/>]; a whole JSON number only.</summary>
    /// <exception cref="FormatException">Null, not a number, not whole, or out of range (the caller names the file and field).</exception>
    public static int Int(JsonNode? node, int min = int.MinValue, int max = int.MaxValue)
    {
        var kind = Kind(node);
        if (kind != JsonValueKind.Number) throw new FormatException($"expected an integer, found {Describe(kind)}");
        double d = node!.GetValue<double>();
        if (d != Math.Floor(d) || double.IsInfinity(d)) throw new FormatException("expected an integer, found a fraction");
        if (d < min || d > max) throw new FormatException($"{d} is outside [{min}, {max}]");
        return (int)d;
    }

    /// <summary>The value as a <see cref="string"/>; not null.</summary>
    /// <exception cref="FormatException">Null or not a string.</exception>
    public static string String(JsonNode? node)
    {
        var kind = Kind(node);
        return kind == JsonValueKind.String ? node!.GetValue<string>() : throw new FormatException($"expected a string, found {Describe(kind)}");
    }

    /// <summary>A finite JSON number.</summary>
    /// <exception cref="FormatException">Null, not a number, or not finite.</exception>
    public static double Double(JsonNode? node)
    {
        var kind = Kind(node);
        if (kind != JsonValueKind.Number) throw new FormatException($"expected a number, found {Describe(kind)}");
        double d = node!.GetValue<double>();
        return double.IsFinite(d) ? d : throw new FormatException("expected a finite number");
    }

    /// <summary>A JSON boolean.</summary>
    /// <exception cref="FormatException">Null or not a boolean.</exception>
    public static bool Bool(JsonNode? node) => Kind(node) switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        var k => throw new FormatException($"expected true or false, found {Describe(k)}"),
    };

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "a boolean",
    };
}
