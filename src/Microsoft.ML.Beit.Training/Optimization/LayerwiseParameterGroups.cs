using System.Text.RegularExpressions;
using TorchSharp.Modules;

namespace Microsoft.ML.Beit.Training.Optimization;

/// <summary>One trainable tensor with its learning-rate scale and weight decay (BEiT's fine-tuning recipe).</summary>
/// <param name="Name">Hugging Face parameter name.</param>
/// <param name="Parameter">The tensor.</param>
/// <param name="LayerId">0 for embeddings, <c>i+1</c> for encoder layer <c>i</c>, <c>L+1</c> for everything else.</param>
/// <param name="LrScale">Multiplier of the scheduled learning rate.</param>
/// <param name="WeightDecay">Decoupled weight decay of this tensor.</param>
internal sealed record ParameterSetting(string Name, Parameter Parameter, int LayerId, double LrScale, double WeightDecay);

/// <summary>
/// Builds per-tensor settings as the original BEiT code does (microsoft/unilm <c>beit/optim_factory.py</c>,
/// <c>get_parameter_groups</c> with <c>LayerDecayValueAssigner</c>): layer-wise learning-rate decay
/// <c>decay^(L+1−layer_id)</c>, and no weight decay on 1-D tensors (biases, norms, layer-scale lambdas), tokens and
/// position / relative-bias tables.
/// </summary>
internal static partial class LayerwiseParameterGroups
{
    [GeneratedRegex(@"(^|\.)encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerPattern();

    /// <summary>The layer id of a Hugging Face BEiT parameter name.</summary>
    public static int LayerId(string name, int numLayers)
    {
        if (name.StartsWith("beit.embeddings.", StringComparison.Ordinal) || name.StartsWith("embeddings.", StringComparison.Ordinal)) return 0;
        var m = LayerPattern().Match(name);
        if (m.Success) return int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) + 1;
        return numLayers + 1;
    }

    /// <summary>Whether a tensor is exempt from weight decay.</summary>
    public static bool SkipsWeightDecay(string name, Parameter p) =>
        p.dim() <= 1
        || name.EndsWith(".bias", StringComparison.Ordinal)
        || name.EndsWith("cls_token", StringComparison.Ordinal)
        || name.EndsWith("mask_token", StringComparison.Ordinal)
        || name.EndsWith("position_embeddings", StringComparison.Ordinal)
        || name.EndsWith("relative_position_bias_table", StringComparison.Ordinal);

    /// <summary>Settings for every trainable parameter of a model.</summary>
    /// <param name="parameters">Named parameters (e.g. <c>module.named_parameters()</c>).</param>
    /// <param name="numLayers">Number of encoder layers.</param>
    /// <param name="layerDecay">Layer-wise decay factor; 1 disables it.</param>
    /// <param name="weightDecay">Weight decay of the tensors that decay.</param>
    public static IReadOnlyList<ParameterSetting> Build(IEnumerable<(string Name, Parameter Parameter)> parameters, int numLayers, double layerDecay, double weightDecay)
    {
        if (layerDecay <= 0 || layerDecay > 1) throw new ArgumentOutOfRangeException(nameof(layerDecay), "layer decay must be in (0, 1].");
        var list = new List<ParameterSetting>();
        foreach (var (name, p) in parameters)
        {
            if (!p.requires_grad) continue;
            int id = LayerId(name, numLayers);
            double scale = Math.Pow(layerDecay, numLayers + 1 - id);
            list.Add(new ParameterSetting(name, p, id, scale, SkipsWeightDecay(name, p) ? 0 : weightDecay));
        }
        return list;
    }
}
