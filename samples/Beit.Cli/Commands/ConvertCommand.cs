using System.CommandLine;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit convert &lt;in&gt; &lt;out-folder&gt; [--num-heads N]</c>: any BEiT-family checkpoint (Hugging Face BEiT or DiT,
/// data2vec-vision, timm BEiT / BEiT v2) to a Hugging Face folder.
/// </summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("in")
        {
            Description = "A checkpoint folder or Hugging Face model id, or a weights file (.safetensors, .bin, .pth, .pt) with any config.json next to it.",
        };
        var output = new Argument<string>("out-folder") { Description = "The Hugging Face folder to write (config.json, model.safetensors, preprocessor_config.json)." };
        var heads = new Option<int?>("--num-heads")
        {
            Description = "timm checkpoints without a relative position table: the attention head count, which their shapes do not tell.",
        };
        var cmd = new Command("convert", "Convert a DiT, data2vec-vision or timm BEiT checkpoint to a Hugging Face BEiT folder.") { input, output, heads };
        cmd.SetAction(pr =>
        {
            string outFolder = pr.GetValue(output)!;
            var family = BeitCheckpoint.Convert(HubModels.Local(pr.GetValue(input)!), outFolder, pr.GetValue(heads));
            var config = BeitConfig.Load(outFolder);
            Console.WriteLine($"Converted a {family} checkpoint to '{outFolder}': {string.Join(", ", config.Architectures ?? [])}, " +
                              $"{config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NumAttentionHeads} heads, " +
                              $"{config.ImageSize}x{config.ImageSize} patch {config.PatchSize}.");
            return 0;
        });
        return cmd;
    }
}
