using System.CommandLine;
using Microsoft.ML.Beit.Training;
using TorchSharp;

namespace Beit.Cli.Commands;

/// <summary><c>beit demo</c>: the README main job on the embedded default (no download needed).</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var cmd = new Command("demo", "Run the main job on the bundled tiny checkpoint and images.");
        cmd.SetAction(_ =>
        {
            // The real TorchSharp model, loaded from the bundled Hugging Face checkpoint by tensor name.
            using var model = BeitForImageClassification.FromPretrained(Assets.TinyClassifier);
            model.eval();
            var config = model.Config;
            Console.WriteLine($"Bundled checkpoint: BeitForImageClassification, {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, " +
                              $"{model.parameters().Sum(p => p.numel())} parameters, labels [{string.Join(", ", config.Id2Label.Values)}]");
            using (torch.NewDisposeScope())
            using (torch.no_grad())
            {
                // Deterministic inputs (seeded), so every run prints the same numbers.
                var pixels = torch.randn(2, config.NumChannels, config.ImageSize, config.ImageSize, generator: new torch.Generator(42));
                var probs = model.forward(pixels).Logits.softmax(1);
                for (int i = 0; i < probs.shape[0]; i++)
                {
                    var (values, indices) = probs[i].topk(3);
                    var top = Enumerable.Range(0, 3).Select(k => $"{config.LabelName((int)indices[k].item<long>())} {values[k].item<float>():P1}");
                    Console.WriteLine($"Input {i} (seeded noise {config.ImageSize}x{config.ImageSize}): {string.Join(", ", top)}");
                }
            }
            foreach (var image in Directory.EnumerateFiles(Assets.Images).Order())
                Console.WriteLine($"Bundled image: {Path.GetFileName(image)} ({new FileInfo(image).Length:N0} bytes)");
            return 0;
        });
        return cmd;
    }
}
