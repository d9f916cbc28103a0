using System.CommandLine;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Cli.Commands;

/// <summary><c>beit info &lt;checkpoint-folder | model-id&gt;</c>: what a Hugging Face BEiT folder holds.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var folder = new Argument<string>("checkpoint-folder") { Description = "A Hugging Face BEiT folder (config.json + model.safetensors or pytorch_model.bin), or a Hub model id (org/name[@revision])." };
        var cmd = new Command("info", "Print a checkpoint's configuration and tensors.") { folder };
        cmd.SetAction(pr =>
        {
            string path;
            BeitConfig config;
            try
            {
                path = HubModels.Local(pr.GetValue(folder)!);
                config = BeitConfig.Load(path);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException or TimeoutException)
            {
                Console.Error.WriteLine($"beit info: {e.Message}");
                return 1;
            }
            Console.WriteLine($"BEiT: {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NumAttentionHeads} heads, MLP {config.IntermediateSize}");
            Console.WriteLine($"Input: {config.ImageSize}x{config.ImageSize}, patch {config.PatchSize} ({config.GridSize}x{config.GridSize} grid)");
            Console.WriteLine($"Relative bias: {(config.UseSharedRelativePositionBias ? "shared" : config.UseRelativePositionBias ? "per layer" : "none")}; " +
                              $"pooling: {(config.UseMeanPooling ? "mean" : "CLS")}; labels: {config.NumLabels}");
            string weights = Path.Combine(path, SafeTensors.ModelFileName);
            if (File.Exists(weights))
            {
                var tensors = SafeTensors.Read(weights);
                long count = tensors.Values.Sum(t => t.ElementCount);
                Console.WriteLine($"Weights: {tensors.Count} tensors, {count:N0} values ({SafeTensors.ModelFileName})");
            }
            return 0;
        });
        return cmd;
    }
}
