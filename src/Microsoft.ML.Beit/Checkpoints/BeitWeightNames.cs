using System.Text.RegularExpressions;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// BEiT tensor names. The canonical on-disk spelling is Hugging Face's classic one (<c>beit.encoder.layer.{i}.attention.attention.query.weight</c>),
/// which every Hub checkpoint and every <c>save_pretrained</c> uses. transformers v5 renamed its modules
/// (<c>beit.layers.{i}.attention.q_proj</c>, <c>mlp.fc1</c>, a per-layer <c>relative_position_bias</c>) and maps the
/// classic names at load time; a raw <c>torch.save(model.state_dict())</c> from v5 carries the new spelling. This maps
/// it back, so every reader sees one spelling.
/// </summary>
internal static partial class BeitWeightNames
{
    // Applied in order to names not already classic; each rule is one module rename of transformers v5.
    private static readonly (Regex Pattern, string Replacement)[] s_v5ToClassic =
    [
        (LayersRegex(), "${p}encoder.layer.${i}."),
        (new Regex(@"\.attention\.q_proj\.", RegexOptions.CultureInvariant), ".attention.attention.query."),
        (new Regex(@"\.attention\.k_proj\.", RegexOptions.CultureInvariant), ".attention.attention.key."),
        (new Regex(@"\.attention\.v_proj\.", RegexOptions.CultureInvariant), ".attention.attention.value."),
        (new Regex(@"\.attention\.o_proj\.", RegexOptions.CultureInvariant), ".attention.output.dense."),
        (new Regex(@"\.mlp\.fc1\.", RegexOptions.CultureInvariant), ".intermediate.dense."),
        (new Regex(@"\.mlp\.fc2\.", RegexOptions.CultureInvariant), ".output.dense."),
        (new Regex(@"(encoder\.layer\.\d+)\.relative_position_bias\.", RegexOptions.CultureInvariant), "$1.attention.attention.relative_position_bias."),
        (new Regex(@"^(?<p>(beit\.)?)relative_position_bias\.", RegexOptions.CultureInvariant), "${p}encoder.relative_position_bias."),
    ];

    [GeneratedRegex(@"^(?<p>(beit\.)?)layers\.(?<i>\d+)\.", RegexOptions.CultureInvariant)]
    private static partial Regex LayersRegex();

    /// <summary>The classic Hugging Face spelling of a BEiT tensor name (unchanged when it already is classic).</summary>
    public static string ToClassic(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (pattern, replacement) in s_v5ToClassic) name = pattern.Replace(name, replacement);
        return name;
    }

    /// <summary>True for buffers Hugging Face never loads (<c>relative_position_index</c>, rebuilt from the geometry).</summary>
    public static bool IsIgnoredOnLoad(string name) => name.Contains("relative_position_index", StringComparison.Ordinal);

    /// <summary>Renames every tensor to the classic spelling.</summary>
    /// <exception cref="InvalidDataException">Two names map to the same classic name.</exception>
    public static Dictionary<string, TensorData> ToClassic(IReadOnlyDictionary<string, TensorData> tensors, string source)
    {
        var result = new Dictionary<string, TensorData>(tensors.Count);
        foreach (var (name, t) in tensors)
        {
            string classic = ToClassic(name);
            if (!result.TryAdd(classic, t))
                throw new InvalidDataException($"'{source}': tensor '{name}' and another tensor both map to '{classic}'.");
        }
        return result;
    }
}
