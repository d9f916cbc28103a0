using Microsoft.ML.Beit.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>What <see cref="BeitPreTrainedModel.LoadWeights"/> left out when loading non-strictly.</summary>
/// <param name="Missing">Model tensors the checkpoint lacked (they keep their initial values).</param>
/// <param name="Unexpected">Checkpoint tensors the model does not have (ignored).</param>
public sealed record BeitLoadReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected);

/// <summary>
/// Base of every BEiT model: its <see cref="BeitConfig"/>, Hugging Face's weight initialisation, loading by
/// Hugging Face state-dict name and saving a folder transformers can load.
/// </summary>
/// <remarks>
/// Module and parameter names equal Hugging Face's, so <c>named_parameters()</c> and <c>state_dict()</c> keys are the
/// checkpoint keys (for example <c>beit.encoder.layer.0.attention.attention.query.weight</c>). Build models outside
/// any <c>torch.NewDisposeScope()</c>: parameters created inside a scope are disposed with it.
/// </remarks>
public abstract class BeitPreTrainedModel : nn.Module
{
    /// <summary>The prefix of the backbone's weights in head models (<c>beit.</c>).</summary>
    public const string BaseModelPrefix = "beit";

    /// <summary>Validates and keeps <paramref name="config"/>.</summary>
    protected BeitPreTrainedModel(string name, BeitConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
    }

    /// <summary>The configuration the model was built from.</summary>
    public BeitConfig Config { get; }

    /// <summary>What the last non-strict <see cref="LoadWeights"/> left out (null before any load).</summary>
    public BeitLoadReport? LoadReport { get; private set; }

    /// <summary>
    /// Hugging Face's <c>_init_weights</c>: linear and convolution weights ~ N(0, <c>initializer_range</c>) with zero
    /// biases; LayerNorm and BatchNorm at 1/0; CLS/mask tokens, position tables and relative bias tables at zero;
    /// layer-scale parameters at <c>layer_scale_init_value</c> (the last three are set at construction).
    /// Deterministic under <c>torch.manual_seed</c>.
    /// </summary>
    protected void InitWeights()
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case Linear or Conv2d or ConvTranspose2d:
                    foreach (var (name, p) in module.named_parameters(recurse: false))
                    {
                        if (name == "weight") nn.init.normal_(p, 0, Config.InitializerRange);
                        else if (name == "bias") nn.init.zeros_(p);
                    }
                    break;
                case LayerNorm:
                    foreach (var (name, p) in module.named_parameters(recurse: false))
                    {
                        if (name == "weight") nn.init.ones_(p);
                        else if (name == "bias") nn.init.zeros_(p);
                    }
                    break;
            }
        }
    }

    /// <summary>
    /// Copies checkpoint tensors into the model by Hugging Face name. Names in transformers v5's spelling are mapped
    /// (<see cref="BeitWeightNames"/>); <c>relative_position_index</c> buffers are ignored, as Hugging Face does. A
    /// bare <see cref="BeitModel"/> takes the <c>beit.</c> weights of a head checkpoint, and a head model takes a bare
    /// backbone checkpoint under <c>beit.</c>.
    /// </summary>
    /// <param name="tensors">Checkpoint tensors by name.</param>
    /// <param name="source">Names the checkpoint in errors.</param>
    /// <param name="strict">Throw when tensors are missing or unexpected; otherwise record them in <see cref="LoadReport"/>.</param>
    /// <exception cref="CheckpointMismatchException">Tensors have the wrong shape or element type (an integer tensor for a float weight), or (strict) are missing or unexpected; every one is named.</exception>
    public void LoadWeights(IReadOnlyDictionary<string, TensorData> tensors, string source = "tensors", bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var target = state_dict();
        var checkpoint = BeitWeightNames.ToClassic(tensors, source)
            .Where(kv => !BeitWeightNames.IsIgnoredOnLoad(kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value);

        string prefix = BaseModelPrefix + ".";
        bool modelPrefixed = target.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        bool checkpointPrefixed = checkpoint.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        var unexpected = new List<string>();
        if (!modelPrefixed && checkpointPrefixed)
        {
            // Backbone from a head checkpoint: keep beit.*, the heads' tensors are unexpected.
            unexpected.AddRange(checkpoint.Keys.Where(k => !k.StartsWith(prefix, StringComparison.Ordinal)));
            checkpoint = checkpoint.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
        }
        else if (modelPrefixed && !checkpointPrefixed)
        {
            checkpoint = checkpoint.ToDictionary(kv => prefix + kv.Key, kv => kv.Value);
        }

        // BatchNorm's step counter is optional in checkpoints (PyTorch fills it in too).
        var missing = target.Keys.Where(k => !checkpoint.ContainsKey(k) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        unexpected.AddRange(checkpoint.Keys.Where(k => !target.ContainsKey(k)));
        unexpected.Sort(StringComparer.Ordinal);
        var mismatched = checkpoint.Where(kv => target.TryGetValue(kv.Key, out var t) && !t.shape.SequenceEqual(kv.Value.Shape))
            .Select(kv => (kv.Key, target[kv.Key].shape, kv.Value.Shape))
            .OrderBy(m => m.Key, StringComparer.Ordinal).ToList();
        // copy_ would convert an integer tensor into a float weight without a word; refuse it by name instead.
        var wrongType = checkpoint.Where(kv => target.TryGetValue(kv.Key, out var t) && t.is_floating_point() != CheckpointMismatchException.IsFloat(kv.Value.DType))
            .Select(kv => (kv.Key, target[kv.Key].is_floating_point() ? "floating-point" : target[kv.Key].dtype.ToString(), kv.Value.DType))
            .OrderBy(w => w.Key, StringComparer.Ordinal).ToList();
        if (mismatched.Count > 0 || wrongType.Count > 0 || (strict && (missing.Count > 0 || unexpected.Count > 0)))
            throw new CheckpointMismatchException(source, missing, unexpected, mismatched, wrongType);

        using (no_grad())
        {
            foreach (var (name, data) in checkpoint)
            {
                if (!target.TryGetValue(name, out var t)) continue;
                using var src = BeitTensors.ToTorch(data);
                t.copy_(src);
            }
        }
        LoadReport = new BeitLoadReport(missing, unexpected);
    }

    /// <summary>Every parameter and persistent buffer, by Hugging Face name, copied to checkpoint data.</summary>
    public Dictionary<string, TensorData> ToTensorData() =>
        state_dict().ToDictionary(kv => kv.Key, kv => BeitTensors.ToTensorData(kv.Value));

    /// <summary>
    /// Writes <c>config.json</c> (with <c>architectures</c> set to this class) and <c>model.safetensors</c> into
    /// <paramref name="folder"/>, with Hugging Face's names and keys, so transformers' <c>from_pretrained</c> loads it.
    /// The files are renamed into place only when both are complete.
    /// </summary>
    public void SavePretrained(string folder)
    {
        var config = Config.Clone();
        config.Architectures = [GetType().Name];
        BeitCheckpoint.Save(folder, config, ToTensorData());
    }

    /// <summary>Builds a model from a checkpoint folder's (or Hugging Face model id's) config (or <paramref name="config"/>) and loads its weights.</summary>
    protected static T LoadPretrained<T>(string folder, BeitConfig? config, bool strict, Func<BeitConfig, T> create) where T : BeitPreTrainedModel
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = Hub.BeitHub.LocalPath(folder, Hub.BeitHubFiles.Configuration | Hub.BeitHubFiles.Weights);
        config ??= BeitConfig.Load(folder);
        var tensors = BeitCheckpoint.ReadTensors(folder);
        var model = create(config);
        try
        {
            model.LoadWeights(tensors, folder, strict);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }
}
