using Microsoft.ML.Beit.Checkpoints;

namespace Microsoft.ML.Beit.Training;

/// <summary>Checkpoints as the fine-tuning trainers (classification and segmentation) start from them.</summary>
internal static class FineTuningCheckpoint
{
    /// <summary>
    /// A checkpoint folder ready for fine-tuning: its configuration and tensors, with a shared relative position bias
    /// (pre-training checkpoints) turned into per-layer tables.
    /// </summary>
    public static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string folder)
    {
        var (config, tensors) = BeitCheckpoint.Load(folder);
        return config.UseSharedRelativePositionBias ? ExpandSharedRelativePositionBias(config, tensors) : (config, tensors);
    }

    /// <summary>
    /// Turns a checkpoint with one shared relative position bias into per-layer tables, each a copy of the shared
    /// one, as the original BEiT code does before fine-tuning.
    /// </summary>
    public static (BeitConfig Config, Dictionary<string, TensorData> Tensors) ExpandSharedRelativePositionBias(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors)
    {
        var c = config.Clone();
        c.UseSharedRelativePositionBias = false;
        c.UseRelativePositionBias = true;
        var t = new Dictionary<string, TensorData>(tensors);
        const string shared = "beit.encoder.relative_position_bias.relative_position_bias_table";
        if (t.Remove(shared, out var table))
        {
            for (int i = 0; i < c.NumHiddenLayers; i++)
                t[$"beit.encoder.layer.{i}.attention.attention.relative_position_bias.relative_position_bias_table"] = table;
        }
        t.Remove("beit.encoder.relative_position_bias.relative_position_index");
        return (c, t);
    }
}
