using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Beit.Hub;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Onnx;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit export-onnx &lt;checkpoint-folder&gt; &lt;output.onnx&gt; --task … [--image-size HxW] [--precision float32|int8|float16]</c>: a Hugging Face BEiT
/// folder to an ONNX model, with no Python.
/// </summary>
internal static class ExportOnnxCommand
{
    private static readonly Dictionary<string, BeitOnnxTask> s_tasks = new()
    {
        ["features"] = BeitOnnxTask.Features,
        ["image-classification"] = BeitOnnxTask.ImageClassification,
        ["semantic-segmentation"] = BeitOnnxTask.SemanticSegmentation,
        ["masked-image-modeling"] = BeitOnnxTask.MaskedImageModeling,
    };

    private static readonly Dictionary<string, BeitOnnxOperatorSet> s_sets = new()
    {
        ["onnxruntime-fused"] = BeitOnnxOperatorSet.OnnxRuntimeFused,
        ["standard"] = BeitOnnxOperatorSet.Standard,
    };

    /// <summary>The <c>--precision</c> values of export-onnx and package.</summary>
    internal static readonly Dictionary<string, BeitOnnxPrecision> Precisions = new()
    {
        ["float32"] = BeitOnnxPrecision.Float32,
        ["int8"] = BeitOnnxPrecision.Int8,
        ["float16"] = BeitOnnxPrecision.Float16,
    };

    /// <summary>A <c>--precision</c> option (float32 | int8 [| float16], default float32).</summary>
    internal static Option<string> PrecisionOption(bool float16)
    {
        var precision = new Option<string>("--precision")
        {
            Description = "float32 (default); int8: dynamic int8 quantization, the fastest on the CPU" +
                (float16 ? "; float16: for ONNX Runtime's CUDA provider (BeitOnnxSession refuses it on the CPU)." : "."),
            DefaultValueFactory = _ => "float32",
        };
        precision.AcceptOnlyFromAmong([.. Precisions.Keys.Where(k => float16 || k != "float16")]);
        return precision;
    }

    public static Command Create()
    {
        var folder = new Argument<string>("checkpoint-folder") { Description = "A Hugging Face BEiT folder (config.json + model.safetensors or pytorch_model.bin), or a Hub model id (org/name[@revision])." };
        var output = new Argument<string>("output.onnx") { Description = "The ONNX file to write (atomically)." };
        var task = new Option<string>("--task")
        {
            Description = "What the graph computes: " + string.Join(" | ", s_tasks.Keys) + ".",
            Required = true,
        };
        task.AcceptOnlyFromAmong([.. s_tasks.Keys]);
        var imageSize = new Option<string?>("--image-size")
        {
            Description = "Input resolution HxW (e.g. 384x384); multiples of the patch size. Default: the checkpoint's image_size.",
        };
        var operators = new Option<string>("--operator-set")
        {
            Description = "onnxruntime-fused (default, fastest on ONNX Runtime) or standard (ONNX opset 17 only, any runtime).",
            DefaultValueFactory = _ => "onnxruntime-fused",
        };
        operators.AcceptOnlyFromAmong([.. s_sets.Keys]);
        var labels = new Option<bool>("--segmentation-labels")
        {
            Description = "semantic-segmentation: also output full-resolution argmax labels [B, H, W].",
        };

        var precision = PrecisionOption(float16: true);
        var cmd = new Command("export-onnx", "Export a BEiT checkpoint to ONNX (our own exporter; no Python).")
        {
            folder, output, task, imageSize, operators, labels, precision,
        };
        cmd.SetAction(pr =>
        {
            var options = new BeitOnnxExportOptions
            {
                OperatorSet = s_sets[pr.GetValue(operators)!],
                SegmentationLabels = pr.GetValue(labels),
                Precision = Precisions[pr.GetValue(precision)!],
            };
            if (pr.GetValue(imageSize) is string size)
            {
                if (!TryParseSize(size, out int h, out int w))
                {
                    Console.Error.WriteLine($"--image-size '{size}' is not HxW (e.g. 224x224).");
                    return 2;
                }
                options.ImageHeight = h;
                options.ImageWidth = w;
            }
            var t = s_tasks[pr.GetValue(task)!];
            string path = pr.GetValue(output)!;
            var sw = Stopwatch.StartNew();
            AtomicFile.CheckWritable(path);
            BeitOnnxExporter.Export(HubModels.Local(pr.GetValue(folder)!, BeitHubFiles.Configuration | BeitHubFiles.Weights), t, path, options);
            Console.WriteLine($"Wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, {t}, {options.OperatorSet}, {options.Precision}) in {sw.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return cmd;
    }

    private static bool TryParseSize(string s, out int h, out int w)
    {
        h = w = 0;
        var parts = s.Split('x', 'X');
        return parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out h)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out w)
            && h > 0 && w > 0;
    }
}
