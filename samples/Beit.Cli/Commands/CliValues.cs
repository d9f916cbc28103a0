using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit;

namespace Beit.Cli.Commands;

/// <summary>
/// A command's values, from the command line or, for every option not given there, from a replay file written by an
/// earlier run (<c>beit train --config model.beit.json</c>). Every value read is recorded, so <see cref="Recorded"/>
/// is the next replay file: all options, explicitly, including the ones left at their defaults.
/// </summary>
internal sealed class CliValues
{
    /// <summary>Replay files are small; anything bigger is not one.</summary>
    private const long MaxConfigBytes = 1 << 20;

    /// <summary>The key naming the format, so a stray JSON file is refused with a clear message.</summary>
    public const string FormatKey = "beit-train-config";

    private readonly ParseResult _parse;
    private readonly JsonObject? _config;
    private readonly string? _configPath;

    public CliValues(ParseResult parse, string? configPath, IEnumerable<string> knownKeys)
    {
        _parse = parse;
        _configPath = configPath;
        if (configPath is null) return;
        _config = UntrustedJson.ReadObjectFile(configPath, MaxConfigBytes);
        if (!_config.TryGetPropertyValue(FormatKey, out var format) || UntrustedJson.Kind(format) != JsonValueKind.Number || format!.GetValue<double>() != 1)
            throw new InvalidDataException($"'{configPath}' is not a beit train replay file (it needs \"{FormatKey}\": 1).");
        var known = new HashSet<string>(knownKeys, StringComparer.Ordinal) { FormatKey };
        var unknown = _config.Select(kv => kv.Key).Where(k => !known.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new InvalidDataException($"'{configPath}': unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(k => $"\"{k}\""))}.");
    }

    /// <summary>Everything read so far, as a replay file.</summary>
    public JsonObject Recorded { get; } = new() { [FormatKey] = 1 };

    /// <summary>The option's value: the command line's when given there, else the replay file's, else its default.</summary>
    public T? Get<T>(Option<T> option) => Get(option.Name.TrimStart('-'), _parse.GetResult(option) is { Implicit: false }, () => _parse.GetValue(option));

    /// <summary>The argument's value, by the same rule.</summary>
    public T? Get<T>(Argument<T> argument) =>
        Get(argument.Name, _parse.GetResult(argument) is { Tokens.Count: > 0 }, () => _parse.GetValue(argument));

    /// <summary>Replaces a recorded value (e.g. a path made absolute, so the replay does not depend on the folder it runs in).</summary>
    public void Record(string key, JsonNode? value) => Recorded[key] = value;

    private T? Get<T>(string key, bool onCommandLine, Func<T?> fromCommandLine)
    {
        T? value = fromCommandLine();
        if (!onCommandLine && _config is not null && _config.TryGetPropertyValue(key, out var node))
        {
            try
            {
                value = Convert<T>(node);
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"'{_configPath}': \"{key}\": {e.Message}.", e);
            }
        }
        Recorded[key] = value is null ? null : JsonSerializer.SerializeToNode(value);
        return value;
    }

    private static T? Convert<T>(JsonNode? node)
    {
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        bool nullable = default(T) is null;
        if (UntrustedJson.Kind(node) == JsonValueKind.Null)
            return nullable ? default : throw new FormatException("expected a value, found null");
        object value = type == typeof(int) ? UntrustedJson.Int(node)
            : type == typeof(double) ? UntrustedJson.Double(node)
            : type == typeof(bool) ? UntrustedJson.Bool(node)
            : type == typeof(string) ? UntrustedJson.String(node)
            : throw new FormatException($"a {type.Name} option cannot be replayed");
        return (T)value;
    }
}
