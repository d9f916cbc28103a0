using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Cli.Commands;

/// <summary><c>beit info &lt;checkpoint-folder | model-id&gt; [--json]</c>: what a Hugging Face BEiT folder holds.</summary>
internal static class InfoCommand
{
    /// <summary>Text output lists this many labels, then says how many more there are; --json lists them all.</summary>
    private const int TextLabelLimit = 20;

    public static Command Create()
    {
        var folder = new Argument<string>("checkpoint-folder") { Description = "A Hugging Face BEiT folder (config.json + model.safetensors or pytorch_model.bin), or a Hub model id (org/name[@revision])." };
        var json = new Option<bool>("--json") { Description = "Write one JSON object {\"source\", \"folder\", \"config\", \"preprocessor\", \"labels\", \"tensors\", \"parameters\", \"weights\"} instead of text." };
        var cmd = new Command("info", "Print a checkpoint's configuration, labels and tensors (name, dtype, shape).") { folder, json };
        cmd.SetAction(pr =>
        {
            string source = pr.GetValue(folder)!;
            BeitCheckpointInfo info;
            try
            {
                info = BeitCheckpoint.Describe(HubModels.Local(source));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException or TimeoutException)
            {
                Console.Error.WriteLine($"beit info: {e.Message}");
                return 1;
            }
            if (pr.GetValue(json))
            {
                using var stdout = Console.OpenStandardOutput();
                using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
                {
                    ToJson(source, info).WriteTo(w);
                }
                stdout.Write("\n"u8);
            }
            else
            {
                WriteText(info);
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The --json object; README's "Inspecting a checkpoint" section documents its shape.</summary>
    private static JsonObject ToJson(string source, BeitCheckpointInfo info)
    {
        var c = info.Config;
        var config = new JsonObject
        {
            ["model_type"] = info.ModelType,
            ["image_size"] = new JsonObject { ["height"] = c.ImageSize, ["width"] = c.ImageSize },
            ["patch_size"] = c.PatchSize,
            ["num_channels"] = c.NumChannels,
            ["num_hidden_layers"] = c.NumHiddenLayers,
            ["hidden_size"] = c.HiddenSize,
            ["num_attention_heads"] = c.NumAttentionHeads,
            ["intermediate_size"] = c.IntermediateSize,
            ["hidden_act"] = c.HiddenAct,
            ["layer_norm_eps"] = c.LayerNormEps,
            ["use_absolute_position_embeddings"] = c.UseAbsolutePositionEmbeddings,
            ["use_relative_position_bias"] = c.UseRelativePositionBias,
            ["use_shared_relative_position_bias"] = c.UseSharedRelativePositionBias,
            ["use_mean_pooling"] = c.UseMeanPooling,
            ["use_mask_token"] = c.UseMaskToken,
            ["layer_scale_init_value"] = c.LayerScaleInitValue,
            ["vocab_size"] = c.VocabSize,
            ["num_labels"] = c.NumLabels,
        };
        return new JsonObject
        {
            ["source"] = source,
            ["folder"] = info.Folder,
            ["config"] = config,
            ["preprocessor"] = info.Preprocessor is { } p ? JsonNode.Parse(p.ToJson()) : null,
            ["labels"] = new JsonArray(info.Labels.Select((name, id) => (JsonNode)new JsonObject { ["id"] = id, ["name"] = name }).ToArray()),
            ["tensors"] = new JsonArray(info.Tensors.Select(t => (JsonNode)new JsonObject
            {
                ["name"] = t.Name,
                ["dtype"] = t.DType.ToString(),
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode?)d).ToArray()),
            }).ToArray()),
            ["parameters"] = info.Parameters,
            ["weights"] = new JsonArray(info.WeightFiles.Select(f => (JsonNode?)f).ToArray()),
        };
    }

    private static void WriteText(BeitCheckpointInfo info)
    {
        var c = info.Config;
        string relative = c.UseSharedRelativePositionBias ? "shared" : c.UseRelativePositionBias ? "per layer" : "none";
        Console.WriteLine($"Folder: {info.Folder}");
        Console.WriteLine($"Model type: {info.ModelType ?? "(none)"}");
        Console.WriteLine($"BEiT: {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, {c.NumAttentionHeads} heads, MLP {c.IntermediateSize} ({c.HiddenAct}), layer norm eps {c.LayerNormEps.ToString(CultureInfo.InvariantCulture)}");
        Console.WriteLine($"Input: {c.ImageSize}x{c.ImageSize} (HxW), {c.NumChannels} channels, patch {c.PatchSize} ({c.GridSize}x{c.GridSize} grid)");
        Console.WriteLine($"Position: relative bias {relative}; absolute embeddings {(c.UseAbsolutePositionEmbeddings ? "yes" : "no")}; mask token {(c.UseMaskToken ? "yes" : "no")}");
        Console.WriteLine($"Pooling: {(c.UseMeanPooling ? "mean" : "CLS")}; layer scale {c.LayerScaleInitValue.ToString(CultureInfo.InvariantCulture)}; vocab {c.VocabSize}");
        if (info.Preprocessor is { } p)
        {
            Console.WriteLine($"Preprocessor: resize {(p.DoResize ? $"{p.Size} {p.Resample.ToString().ToLowerInvariant()}" : "off")}; " +
                              $"crop {(p.DoCenterCrop ? p.CropSize.ToString() : "off")}; " +
                              $"rescale {(p.DoRescale ? p.RescaleFactor.ToString("G6", CultureInfo.InvariantCulture) : "off")}; " +
                              $"normalize {(p.DoNormalize ? $"mean [{Join(p.ImageMean)}] std [{Join(p.ImageStd)}]" : "off")}");
        }
        else
        {
            Console.WriteLine("Preprocessor: none (no preprocessor_config.json)");
        }
        Console.WriteLine($"Labels ({info.Labels.Count}):");
        foreach (var (name, id) in info.Labels.Take(TextLabelLimit).Select((n, i) => (n, i))) Console.WriteLine($"  {id,5}  {name}");
        if (info.Labels.Count > TextLabelLimit) Console.WriteLine($"  … {info.Labels.Count - TextLabelLimit} more (--json lists all)");
        Console.WriteLine($"Weights: {string.Join(", ", info.WeightFiles)}; {info.Tensors.Count} tensors, {info.Parameters:N0} parameters");
        int width = info.Tensors.Count == 0 ? 0 : info.Tensors.Max(t => t.Name.Length);
        foreach (var (name, dtype, shape) in info.Tensors)
            Console.WriteLine($"  {name.PadRight(width)}  {dtype,-4}  [{string.Join(", ", shape)}]");

        static string Join(IReadOnlyList<double> values) => string.Join(", ", values.Select(v => v.ToString("G6", CultureInfo.InvariantCulture)));
    }
}
