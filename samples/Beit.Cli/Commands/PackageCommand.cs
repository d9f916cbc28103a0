using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Onnx;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit package &lt;checkpoint-folder&gt; --task &lt;image-classification|features|semantic-segmentation&gt; --out model.zip [--precision float32|int8]</c>:
/// builds the ML.NET pipeline (image paths → decoded images → pixel values → the model) and saves it as a model.zip
/// that <c>mlContext.Model.Load</c> reads with nothing registered.
/// </summary>
internal static class PackageCommand
{
    /// <summary>The text column of image paths every packaged model takes.</summary>
    public const string InputColumn = "ImagePath";

    private static readonly string[] s_tasks = ["image-classification", "features", "semantic-segmentation"];

    private static readonly Dictionary<string, BeitOnnxTask> s_taskOf = new()
    {
        ["image-classification"] = BeitOnnxTask.ImageClassification,
        ["features"] = BeitOnnxTask.Features,
        ["semantic-segmentation"] = BeitOnnxTask.SemanticSegmentation,
    };

    public static Command Create()
    {
        var folder = new Argument<string>("checkpoint-folder") { Description = "A Hugging Face BEiT folder (config.json + model.safetensors or pytorch_model.bin; preprocessor_config.json if present), or a Hub model id (org/name[@revision])." };
        var task = new Option<string>("--task") { Description = "The pipeline's last stage: " + string.Join(" | ", s_tasks) + ".", Required = true };
        task.AcceptOnlyFromAmong(s_tasks);
        var output = new Option<string>("--out") { Description = "The model.zip to write (atomically).", Required = true };
        // float16 is not offered: ML.NET does not save the GPU choice in model.zip, so a float16 graph loaded later would run on
        // the CPU provider, slower than float32.
        var precision = ExportOnnxCommand.PrecisionOption(float16: false);
        var inputKind = InputOption();
        var cmd = new Command("package", "Build the ML.NET pipeline for a checkpoint and save it as model.zip.") { folder, task, output, precision, inputKind };
        cmd.SetAction(pr =>
        {
            string zip = pr.GetValue(output)!, t = pr.GetValue(task)!;
            var sw = Stopwatch.StartNew();
            // Before the (slow) export: a path that cannot be written fails now.
            AtomicFile.CheckWritable(zip);
            string checkpoint = HubModels.Local(pr.GetValue(folder)!);
            var ml = new MLContext();
            var p = ExportOnnxCommand.Precisions[pr.GetValue(precision)!];
            var kind = BeitModelInputs.Parse(pr.GetValue(inputKind)!);
            var options = BeitModelInputs.Options(kind);
            options.ExportOptions = new BeitOnnxExportOptions { Precision = p };
            var input = BeitPipelines.EmptyInput(ml, options);
            var estimator = BeitPipelines.CreateEstimator(ml, BeitModelSource.FromPath(checkpoint), s_taskOf[t], options);
            // A classifier's PredictedLabel goes back to its name, as Model Builder's models give it:
            // ModelOutput { string PredictedLabel; float[] Score; }.
            if (t == "image-classification") estimator = estimator.Append<ITransformer>(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
            using var model = estimator.Fit(input);
            string outputs = t == "image-classification"
                ? $"Score, PredictedLabel ({BeitClassifierTransformer.FromLoaded(model).LabelNames.Count} labels, as strings)"
                : model.LastTransformer switch
                {
                    BeitFeaturizerTransformer f => $"Features ({f.FeatureSize} floats)",
                    BeitSegmenterTransformer s => $"PredictedLabel, PredictedLabelSize ({s.LabelNames.Count} classes)",
                    var other => other.GetType().Name,
                };
            BeitPipelines.Save(ml, model, input.Schema, zip);
            Console.WriteLine($"Wrote {zip} ({new FileInfo(zip).Length / 1e6:F1} MB) in {sw.Elapsed.TotalSeconds:F1} s, {p}: {options.InputColumnName} → Image → PixelValues → {outputs}");
            return 0;
        });
        return cmd;
    }

    /// <summary><c>--input path|bytes</c>: the saved model's input column, an image path string (<c>ImagePath</c>) or Model Builder's <c>byte[] ImageSource</c>.</summary>
    public static Option<string> InputOption()
    {
        var option = new Option<string>("--input")
        {
            Description = "The saved model's input column: path (a string ImagePath, the default) or bytes (a byte[] ImageSource of an encoded image, as Model Builder's ModelInput).",
            DefaultValueFactory = _ => "path",
        };
        option.AcceptOnlyFromAmong("path", "bytes");
        return option;
    }

    internal sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }
}
