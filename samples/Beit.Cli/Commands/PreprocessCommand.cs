using System.CommandLine;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Hub;
using Microsoft.ML.Beit.Processing;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit preprocess &lt;image&gt; [--preprocessor-config &lt;file-or-checkpoint-folder&gt;] --out &lt;file.safetensors&gt;</c>:
/// the exact <c>pixel_values</c> a checkpoint's processor gives, to compare with a Python pipeline.
/// </summary>
internal static class PreprocessCommand
{
    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "An image file (PNG, JPEG, BMP, GIF or WebP)." };
        var config = new Option<string?>("--preprocessor-config")
        {
            Description = "A preprocessor_config.json, or a checkpoint folder or Hub model id (org/name[@revision]) with one. Default: BeitImageProcessor's v4.34 class defaults (256x256 bicubic, center crop 224, mean/std 0.5).",
        };
        var output = new Option<string>("--out") { Description = "The .safetensors file to write pixel_values [1,3,H,W] (F32) to.", Required = true };
        var cmd = new Command("preprocess", "Write an image's BEiT pixel_values (Pillow-exact) to a safetensors file.") { image, config, output };
        cmd.SetAction(pr =>
        {
            string imagePath = pr.GetValue(image)!, outPath = pr.GetValue(output)!;
            string? configPath = pr.GetValue(config);
            var processor = configPath is null ? new BeitImageProcessor()
                : BeitImageProcessor.FromPretrained(HubModels.Local(configPath, BeitHubFiles.Configuration | BeitHubFiles.Preprocessor));
            var rgb = ImageDecoder.Decode(imagePath);
            var size = processor.GetOutputSize(rgb.Size);
            var values = processor.Preprocess(rgb);
            SafeTensors.Write(outPath, new Dictionary<string, TensorData>
            {
                ["pixel_values"] = TensorData.FromFloats(values, 1, 3, size.Height, size.Width),
            });
            Console.WriteLine($"{imagePath}: {rgb.Width}x{rgb.Height} -> pixel_values [1,3,{size.Height},{size.Width}] " +
                              $"(min {values.Min():F4}, max {values.Max():F4}, mean {values.Average():F4}) -> {outPath}");
            return 0;
        });
        return cmd;
    }
}
