using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.Beit;

/// <summary>
/// The System.Text.Json contract of <see cref="BeitConfig"/>: snake_case names, unknown keys in
/// <see cref="BeitConfig.ExtraFields"/>, and converters as strict as <see cref="UntrustedJson"/> (a whole JSON number
/// for an int, a finite one for a double, true/false for a bool, a string for a string, never null where the field is
/// not optional). A converter's <see cref="JsonException"/> carries the JSON path, from which
/// <see cref="BeitConfig"/> names the field. The text itself has already passed <see cref="UntrustedJson"/> (size cap,
/// duplicate keys, nesting bound), so nothing here reads more than a bounded file.
/// </summary>
internal static class BeitConfigJson
{
    /// <summary>Options for reading and writing <see cref="BeitConfig"/>.</summary>
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.Strict,
        Converters = { new IntConverter(), new DoubleConverter(), new BoolConverter() },
    };

    /// <summary>The top-level key of a JSON path such as <c>$.pool_scales[1]</c> or <c>$['odd key']</c>.</summary>
    public static string? Field(string? path)
    {
        if (path is null || !path.StartsWith('$')) return null;
        if (path.StartsWith("$.", StringComparison.Ordinal))
        {
            int end = path.IndexOfAny(['.', '['], 2);
            return end < 0 ? path[2..] : path[2..end];
        }
        if (path.StartsWith("$['", StringComparison.Ordinal))
        {
            int end = path.IndexOf("']", 3, StringComparison.Ordinal);
            return end < 0 ? null : path[3..end];
        }
        return null;
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.Null => "null",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        _ => "a boolean",
    };

    internal static int ReadInt(ref Utf8JsonReader reader, int min = int.MinValue, int max = int.MaxValue)
    {
        if (reader.TokenType != JsonTokenType.Number) throw new JsonException($"expected an integer, found {Describe(reader.TokenType)}");
        if (!reader.TryGetDouble(out double d) || double.IsInfinity(d)) throw new JsonException("expected an integer, found a number out of range");
        if (d != Math.Floor(d)) throw new JsonException("expected an integer, found a fraction");
        if (d < min || d > max) throw new JsonException($"{d.ToString(CultureInfo.InvariantCulture)} is outside [{min}, {max}]");
        return (int)d;
    }

    internal static string ReadString(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw new JsonException($"expected a string, found {Describe(reader.TokenType)}");

    /// <summary>A whole JSON number in the range of <see cref="int"/>; null refused.</summary>
    public sealed class IntConverter : JsonConverter<int>
    {
        public override bool HandleNull => true;
        public override int Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => ReadInt(ref reader);
        public override void Write(Utf8JsonWriter writer, int value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }

    /// <summary>A finite JSON number; null refused.</summary>
    public sealed class DoubleConverter : JsonConverter<double>
    {
        public override bool HandleNull => true;
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.Number) throw new JsonException($"expected a number, found {Describe(reader.TokenType)}");
            return reader.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw new JsonException("expected a finite number");
        }
        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }

    /// <summary>true or false; null refused.</summary>
    public sealed class BoolConverter : JsonConverter<bool>
    {
        public override bool HandleNull => true;
        public override bool Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
        {
            JsonTokenType.True => true,
            JsonTokenType.False => false,
            var t => throw new JsonException($"expected true or false, found {Describe(t)}"),
        };
        public override void Write(Utf8JsonWriter writer, bool value, JsonSerializerOptions options) => writer.WriteBooleanValue(value);
    }

    /// <summary>A string, null refused (for an optional string, null is the absent value and this converter is not called).</summary>
    public sealed class StringConverter : JsonConverter<string>
    {
        public override bool HandleNull => true;
        public override string Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => ReadString(ref reader);
        public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
    }

    /// <summary>An optional string: null stays null.</summary>
    public sealed class OptionalStringConverter : JsonConverter<string>
    {
        public override string Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => ReadString(ref reader);
        public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
    }

    /// <summary>An int, or a square <c>[n, n]</c> as transformers accepts for <c>image_size</c> and <c>patch_size</c>.</summary>
    public sealed class SquareIntConverter : JsonConverter<int>
    {
        public override bool HandleNull => true;
        public override int Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartArray) return ReadInt(ref reader);
            var v = IntArrayConverter.ReadElements(ref reader);
            if (v.Length != 2 || v[0] != v[1]) throw new JsonException($"must be square (got [{string.Join(",", v)}])");
            return v[0];
        }
        public override void Write(Utf8JsonWriter writer, int value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }

    /// <summary>An array of ints (a lone int is an array of one), no null elements; null refused.</summary>
    public class IntArrayConverter : JsonConverter<int[]>
    {
        public override bool HandleNull => true;

        public override int[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.StartArray ? ReadElements(ref reader) : [ReadInt(ref reader)];

        internal static int[] ReadElements(ref Utf8JsonReader reader)
        {
            var list = new List<int>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) list.Add(ReadInt(ref reader));
            return [.. list];
        }

        public override void Write(Utf8JsonWriter writer, int[] value, JsonSerializerOptions options)
        {
            writer.WriteStartArray();
            foreach (int v in value) writer.WriteNumberValue(v);
            writer.WriteEndArray();
        }
    }

    /// <summary>An optional array of ints: null stays null.</summary>
    public sealed class OptionalIntArrayConverter : IntArrayConverter
    {
        public override bool HandleNull => false;
    }

    /// <summary>An optional array of strings (a lone string is an array of one), no null elements: null stays null.</summary>
    public sealed class OptionalStringArrayConverter : JsonConverter<string[]>
    {
        public override string[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartArray) return [ReadString(ref reader)];
            var list = new List<string>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) list.Add(ReadString(ref reader));
            return [.. list];
        }

        public override void Write(Utf8JsonWriter writer, string[] value, JsonSerializerOptions options)
        {
            writer.WriteStartArray();
            foreach (var v in value) writer.WriteStringValue(v);
            writer.WriteEndArray();
        }
    }

    /// <summary>
    /// <c>id2label</c>: class index (a decimal key) → name; at most <see cref="BeitLimits.MaxNumLabels"/> entries,
    /// counted before each is stored; two keys for one index (<c>"0"</c>, <c>"00"</c>) refused. Null is no labels.
    /// </summary>
    public sealed class Id2LabelConverter : JsonConverter<SortedDictionary<int, string>>
    {
        public override bool HandleNull => true;

        public override SortedDictionary<int, string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var labels = new SortedDictionary<int, string>();
            if (reader.TokenType == JsonTokenType.Null) return labels;
            if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException($"expected an object, found {Describe(reader.TokenType)}");
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string key = reader.GetString()!;
                if (labels.Count >= BeitLimits.MaxNumLabels) throw new JsonException($"more than {BeitLimits.MaxNumLabels} labels; at most {BeitLimits.MaxNumLabels} are accepted");
                if (!int.TryParse(key, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id))
                    throw new JsonException($"key '{key}' is not a class index");
                reader.Read();
                if (!labels.TryAdd(id, ReadString(ref reader))) throw new JsonException($"two labels for class {id}");
            }
            return labels;
        }

        public override void Write(Utf8JsonWriter writer, SortedDictionary<int, string> value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            foreach (var (id, name) in value) writer.WriteString(id.ToString(CultureInfo.InvariantCulture), name);
            writer.WriteEndObject();
        }
    }

    /// <summary><c>label2id</c>: name → class index, at most <see cref="BeitLimits.MaxNumLabels"/> entries. Null is none.</summary>
    public sealed class Label2IdConverter : JsonConverter<Dictionary<string, int>>
    {
        public override Dictionary<string, int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException($"expected an object, found {Describe(reader.TokenType)}");
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string key = reader.GetString()!;
                if (ids.Count >= BeitLimits.MaxNumLabels) throw new JsonException($"more than {BeitLimits.MaxNumLabels} labels; at most {BeitLimits.MaxNumLabels} are accepted");
                reader.Read();
                ids[key] = ReadInt(ref reader);
            }
            return ids;
        }

        public override void Write(Utf8JsonWriter writer, Dictionary<string, int> value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            foreach (var (name, id) in value) writer.WriteNumber(name, id);
            writer.WriteEndObject();
        }
    }
}
