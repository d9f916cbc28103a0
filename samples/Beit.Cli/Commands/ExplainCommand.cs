using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Processing;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit explain &lt;model&gt; &lt;image&gt; --out heat.png [--method rollout|cls] [--layer L] [--json]</c>: where the
/// model looks — attention rollout or the CLS token's attention, as a heat map over the image and/or a JSON grid.
/// </summary>
internal static class ExplainCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model.zip made by 'beit package', a Hugging Face checkpoint folder, or a Hub model id (org/name[@revision])." };
        var image = new Argument<string>("image") { Description = "The image to explain (png, jpg, bmp, gif, webp)." };
        var output = new Option<string?>("--out") { Description = "Write the heat map over the image to this PNG file." };
        var method = new Option<string>("--method") { Description = "rollout (default): attention rollout through the layers (Abnar & Zuidema 2020); cls: one layer's CLS-token attention, averaged over heads.", DefaultValueFactory = _ => "rollout" };
        method.AcceptOnlyFromAmong("rollout", "cls");
        var layer = new Option<int?>("--layer") { Description = "The layer (0-based): the last one rolled out, or the one whose CLS attention is shown. Default: the last layer." };
        var alpha = new Option<float>("--alpha") { Description = "Weight of the colours over the image, 0 to 1 (default 0.5).", DefaultValueFactory = _ => 0.5f };
        var json = new Option<bool>("--json") { Description = "Print {\"method\", \"layer\", \"height\", \"width\", \"map\": [[...]]} (the map over the patch grid, rows top to bottom) on stdout." };
        var cmd = new Command("explain", "Show what the model looks at: an attention heat map over an image.") { model, image, output, method, layer, alpha, json };
        cmd.SetAction(pr =>
        {
            string? outPath = pr.GetValue(output);
            bool asJson = pr.GetValue(json);
            float a = pr.GetValue(alpha);
            if (outPath is null && !asJson)
            {
                Console.Error.WriteLine("beit explain: give --out <heat.png>, --json, or both.");
                return 2;
            }
            if (!(a is >= 0 and <= 1))
            {
                Console.Error.WriteLine("beit explain: --alpha must be between 0 and 1.");
                return 2;
            }
            if (outPath != null) AtomicFile.CheckWritable(outPath);
            var m = pr.GetValue(method) == "cls" ? BeitAttentionMethod.Cls : BeitAttentionMethod.Rollout;
            string modelPath = HubModels.Local(pr.GetValue(model)!);
            string imagePath = pr.GetValue(image)!;
            using var explainer = Directory.Exists(modelPath) ? BeitAttentionExplainer.FromCheckpoint(modelPath)
                : File.Exists(modelPath) ? BeitAttentionExplainer.FromModelZip(modelPath)
                : throw new FileNotFoundException($"Model '{modelPath}' does not exist (expected a model.zip, a checkpoint folder or a Hub model id).", modelPath);
            var rgb = ImageDecoder.Decode(imagePath);
            var maps = explainer.Explain(rgb);
            int l = pr.GetValue(layer) ?? maps.Layers - 1;
            if (l < 0 || l >= maps.Layers)
            {
                Console.Error.WriteLine($"beit explain: --layer must be between 0 and {maps.Layers - 1} (the model has {maps.Layers} layers).");
                return 2;
            }
            var map = maps.Map(m, l);
            if (outPath != null)
                AtomicFile.WriteAllBytes(outPath, BeitHeatMap.EncodePng(BeitHeatMap.Overlay(rgb, map, maps.Grid, explainer.Processor, a)));
            if (asJson) WriteJson(m, l, maps.Grid, map);
            else Console.WriteLine($"{outPath}: {(m == BeitAttentionMethod.Rollout ? "attention rollout through" : "CLS attention of")} layer {l}, {maps.Grid.Height}x{maps.Grid.Width} patches, over {rgb.Width}x{rgb.Height} pixels.");
            return 0;
        });
        return cmd;
    }

    private static void WriteJson(BeitAttentionMethod method, int layer, PixelSize grid, float[] map)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("method", method == BeitAttentionMethod.Rollout ? "rollout" : "cls");
            w.WriteNumber("layer", layer);
            w.WriteNumber("height", grid.Height);
            w.WriteNumber("width", grid.Width);
            w.WriteStartArray("map");
            for (int r = 0; r < grid.Height; r++)
            {
                w.WriteStartArray();
                for (int c = 0; c < grid.Width; c++) w.WriteNumberValue(map[r * grid.Width + c]);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        stdout.Write("\n"u8);
    }
}
