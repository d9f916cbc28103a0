using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>The naming family of a checkpoint's tensors; every family runs on BEiT's architecture.</summary>
public enum BeitCheckpointFamily
{
    /// <summary>Hugging Face <c>Beit*</c> names (<c>beit.…</c>), including DiT (<c>microsoft/dit-*</c>), in the classic or the transformers-v5 spelling.</summary>
    HuggingFace,
    /// <summary>Hugging Face <c>Data2VecVision*</c> names: the backbone under <c>data2vec_vision.</c> instead of <c>beit.</c>.</summary>
    Data2VecVision,
    /// <summary>A timm (or original microsoft/unilm) BEiT / BEiT v2 state dict: <c>patch_embed</c>, <c>blocks.N.attn.qkv</c>, <c>gamma_1</c>, <c>head</c>.</summary>
    Timm,
}

/// <summary>
/// Recognises the checkpoint families that run on BEiT's architecture and renames their tensors to Hugging Face's
/// <c>Beit*</c> names, so the rest of the library sees one spelling.
/// </summary>
internal static partial class BeitCheckpointFamilies
{
    /// <summary>The backbone prefix of transformers' <c>Data2VecVision*</c> models (<c>base_model_prefix</c>).</summary>
    public const string Data2VecVisionPrefix = "data2vec_vision.";

    private const string BeitPrefix = "beit.";

    /// <summary>Which family the tensor names belong to.</summary>
    public static BeitCheckpointFamily Detect(IReadOnlyDictionary<string, TensorData> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        // timm's Beit (and unilm's) packs q/k/v into blocks.N.attn.qkv with separate q_bias/v_bias.
        if (tensors.ContainsKey("blocks.0.attn.qkv.weight") || tensors.ContainsKey("blocks.0.attn.q_bias")) return BeitCheckpointFamily.Timm;
        if (tensors.Keys.Any(k => k.StartsWith(Data2VecVisionPrefix, StringComparison.Ordinal))) return BeitCheckpointFamily.Data2VecVision;
        return BeitCheckpointFamily.HuggingFace;
    }

    /// <summary>The tensors under Hugging Face <c>Beit*</c> names (the same dictionary when they already are).</summary>
    /// <exception cref="InvalidDataException">A timm tensor has no Hugging Face counterpart or an inconsistent shape, or two names collide; the message names <paramref name="source"/>.</exception>
    public static IReadOnlyDictionary<string, TensorData> ToHuggingFace(IReadOnlyDictionary<string, TensorData> tensors, string source) =>
        Detect(tensors) switch
        {
            BeitCheckpointFamily.Data2VecVision => RenamePrefix(tensors, source),
            BeitCheckpointFamily.Timm => FromTimm(tensors, source),
            _ => tensors,
        };

    // data2vec-vision is BEiT under another base_model_prefix: transformers' Data2VecVision modules are copies of the Beit
    // ones ("Copied from transformers.models.beit…"), so only the prefix differs; heads keep their names.
    private static Dictionary<string, TensorData> RenamePrefix(IReadOnlyDictionary<string, TensorData> tensors, string source)
    {
        var result = new Dictionary<string, TensorData>(tensors.Count);
        foreach (var (name, t) in tensors)
        {
            string renamed = name.StartsWith(Data2VecVisionPrefix, StringComparison.Ordinal) ? BeitPrefix + name[Data2VecVisionPrefix.Length..] : name;
            if (!result.TryAdd(renamed, t))
                throw new InvalidDataException($"'{source}': tensor '{name}' and another tensor both map to '{renamed}'.");
        }
        return result;
    }

    [GeneratedRegex(@"^blocks\.(?<i>\d{1,6})\.(?<rest>.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex BlockRegex();

    // Per-block renames of transformers' convert_beit_unilm_to_pytorch.py (create_rename_keys / read_in_q_k_v).
    private static readonly Dictionary<string, string> s_blockNames = new(StringComparer.Ordinal)
    {
        ["norm1.weight"] = "layernorm_before.weight",
        ["norm1.bias"] = "layernorm_before.bias",
        ["norm2.weight"] = "layernorm_after.weight",
        ["norm2.bias"] = "layernorm_after.bias",
        ["attn.proj.weight"] = "attention.output.dense.weight",
        ["attn.proj.bias"] = "attention.output.dense.bias",
        ["mlp.fc1.weight"] = "intermediate.dense.weight",
        ["mlp.fc1.bias"] = "intermediate.dense.bias",
        ["mlp.fc2.weight"] = "output.dense.weight",
        ["mlp.fc2.bias"] = "output.dense.bias",
        ["attn.q_bias"] = "attention.attention.query.bias",
        ["attn.v_bias"] = "attention.attention.value.bias",
        // Hugging Face calls them lambda because from_pretrained used to rename parameters called gamma.
        ["gamma_1"] = "lambda_1",
        ["gamma_2"] = "lambda_2",
        ["attn.relative_position_bias_table"] = "attention.attention.relative_position_bias.relative_position_bias_table",
    };

    private static readonly Dictionary<string, string> s_topNames = new(StringComparer.Ordinal)
    {
        ["cls_token"] = "beit.embeddings.cls_token",
        ["mask_token"] = "beit.embeddings.mask_token",
        ["pos_embed"] = "beit.embeddings.position_embeddings",
        ["patch_embed.proj.weight"] = "beit.embeddings.patch_embeddings.projection.weight",
        ["patch_embed.proj.bias"] = "beit.embeddings.patch_embeddings.projection.bias",
        ["rel_pos_bias.relative_position_bias_table"] = "beit.encoder.relative_position_bias.relative_position_bias_table",
        ["fc_norm.weight"] = "beit.pooler.layernorm.weight",
        ["fc_norm.bias"] = "beit.pooler.layernorm.bias",
        ["head.weight"] = "classifier.weight",
        ["head.bias"] = "classifier.bias",
        ["lm_head.weight"] = "lm_head.weight",
        ["lm_head.bias"] = "lm_head.bias",
    };

    /// <summary>
    /// Converts a timm / unilm BEiT state dict to Hugging Face names, as transformers' <c>convert_beit_unilm_to_pytorch.py</c>
    /// does: <c>qkv.weight</c> split in query, key, value order; <c>q_bias</c>/<c>v_bias</c> become the query and value
    /// biases (Hugging Face's key projection has no bias, and timm's <c>k_bias</c> is a zero buffer); the final <c>norm</c>
    /// becomes the masked-image-modeling head's <c>layernorm</c> when there is an <c>lm_head</c>, else <c>beit.layernorm</c>.
    /// <c>relative_position_index</c> buffers are dropped: they are rebuilt from the geometry.
    /// </summary>
    private static Dictionary<string, TensorData> FromTimm(IReadOnlyDictionary<string, TensorData> tensors, string source)
    {
        var result = new Dictionary<string, TensorData>(tensors.Count + 8);
        var unknown = new List<string>();
        bool hasLmHead = tensors.ContainsKey("lm_head.weight");
        var blocks = new SortedSet<int>();
        void Add(string from, string to, TensorData t)
        {
            if (!result.TryAdd(to, t)) throw new InvalidDataException($"'{source}': tensor '{from}' and another tensor both map to '{to}'.");
        }

        foreach (var (name, t) in tensors)
        {
            if (name.EndsWith("relative_position_index", StringComparison.Ordinal)) continue;
            if (s_topNames.TryGetValue(name, out var top))
            {
                Add(name, top, t);
                continue;
            }
            if (name is "norm.weight" or "norm.bias")
            {
                Add(name, (hasLmHead ? "" : BeitPrefix) + "layernorm." + name["norm.".Length..], t);
                continue;
            }
            var m = BlockRegex().Match(name);
            if (!m.Success)
            {
                unknown.Add(name);
                continue;
            }
            int i = int.Parse(m.Groups["i"].Value, CultureInfo.InvariantCulture);
            blocks.Add(i);
            string rest = m.Groups["rest"].Value, layer = $"beit.encoder.layer.{i}.";
            if (s_blockNames.TryGetValue(rest, out var renamed)) Add(name, layer + renamed, t);
            else if (rest == "attn.qkv.weight")
            {
                var (q, k, v) = SplitQkv(t, name, source);
                Add(name, layer + "attention.attention.query.weight", q);
                Add(name, layer + "attention.attention.key.weight", k);
                Add(name, layer + "attention.attention.value.weight", v);
            }
            else if (rest != "attn.k_bias") unknown.Add(name);
        }
        if (unknown.Count > 0)
            throw new InvalidDataException($"'{source}': a timm BEiT state dict has tensors with no Hugging Face BEiT counterpart: " +
                                           string.Join(", ", unknown.Order(StringComparer.Ordinal).Take(8)) + (unknown.Count > 8 ? ", …" : "") + ".");

        // timm built without qkv_bias has neither q_bias nor v_bias; Hugging Face always has both, so they are zero.
        foreach (int i in blocks)
        {
            string layer = $"beit.encoder.layer.{i}.attention.attention.";
            if (!result.TryGetValue(layer + "query.weight", out var q)) continue;
            foreach (var bias in new[] { "query.bias", "value.bias" })
                if (!result.ContainsKey(layer + bias)) result[layer + bias] = ZerosLike(q.Shape[0], q.DType);
        }
        return result;
    }

    private static (TensorData Q, TensorData K, TensorData V) SplitQkv(TensorData qkv, string name, string source)
    {
        if (qkv.Shape.Length != 2 || qkv.Shape[0] % 3 != 0 || qkv.Shape[0] == 0)
            throw new InvalidDataException($"'{source}': '{name}' has shape [{string.Join(",", qkv.Shape)}], not [3·D, D].");
        long rows = qkv.Shape[0] / 3, cols = qkv.Shape[1];
        int bytes = checked((int)(rows * cols * TensorData.ElementSize(qkv.DType)));
        TensorData Part(int k) => new(qkv.DType, [rows, cols], qkv.Data.AsSpan(k * bytes, bytes).ToArray());
        return (Part(0), Part(1), Part(2));
    }

    private static TensorData ZerosLike(long size, TensorDType dtype) =>
        new(dtype, [size], new byte[checked(size * TensorData.ElementSize(dtype))]);
}
