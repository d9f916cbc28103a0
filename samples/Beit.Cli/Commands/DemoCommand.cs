using System.CommandLine;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
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
            var config = BeitConfig.Load(Assets.TinyClassifier);
            var tensors = SafeTensors.Read(Path.Combine(Assets.TinyClassifier, SafeTensors.ModelFileName));
            Console.WriteLine($"Bundled checkpoint: {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {tensors.Count} tensors, " +
                              $"labels [{string.Join(", ", config.Id2Label.Values)}]");
            using (torch.NewDisposeScope())
            {
                var w = torch.tensor(tensors["classifier.weight"].ToFloatArray(), tensors["classifier.weight"].Shape);
                Console.WriteLine($"TorchSharp: classifier weight norm {w.norm().item<float>():F4}");
            }
            foreach (var image in Directory.EnumerateFiles(Assets.Images).Order())
                Console.WriteLine($"Bundled image: {Path.GetFileName(image)} ({new FileInfo(image).Length:N0} bytes)");
            return 0;
        });
        return cmd;
    }
}
