using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.IO;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit package &lt;checkpoint-folder&gt; --task &lt;image-classification|features|semantic-segmentation&gt; --out model.zip</c>:
/// builds the ML.NET pipeline (image paths → decoded images → pixel values → the model) and saves it as a model.zip
/// that <c>mlContext.Model.Load</c> reads with nothing registered.
/// </summary>
internal static class PackageCommand
{
    /// <summary>The text column of image paths every packaged model takes.</summary>
    public const string InputColumn = "ImagePath";

    private static readonly string[] s_tasks = ["image-classification", "features", "semantic-segmentation"];

    public static Command Create()
    {
        var folder = new Argument<string>("checkpoint-folder") { Description = "A Hugging Face BEiT folder (config.json + model.safetensors or pytorch_model.bin; preprocessor_config.json if present)." };
        var task = new Option<string>("--task") { Description = "The pipeline's last stage: " + string.Join(" | ", s_tasks) + ".", Required = true };
        task.AcceptOnlyFromAmong(s_tasks);
        var output = new Option<string>("--out") { Description = "The model.zip to write (atomically).", Required = true };
        var cmd = new Command("package", "Build the ML.NET pipeline for a checkpoint and save it as model.zip.") { folder, task, output };
        cmd.SetAction(pr =>
        {
            string checkpoint = pr.GetValue(folder)!, zip = pr.GetValue(output)!, t = pr.GetValue(task)!;
            var sw = Stopwatch.StartNew();
            // Before the (slow) export: a path that cannot be written fails now.
            AtomicFile.CheckWritable(zip);
            var ml = new MLContext();
            var input = ml.Data.LoadFromEnumerable(Array.Empty<PathRow>());
            var load = ml.Transforms.LoadBeitImages("Image", InputColumn).Append(ml.Transforms.BeitImageProcessor(checkpoint));
            (ITransformer model, string outputs) = t switch
            {
                "image-classification" => Fit(load.Append(ml.Transforms.BeitClassifier(checkpoint)), input, m => $"Score, PredictedLabel ({m.LastTransformer.LabelNames.Count} labels)"),
                "features" => Fit(load.Append(ml.Transforms.BeitFeaturizer(checkpoint)), input, m => $"Features ({m.LastTransformer.FeatureSize} floats)"),
                _ => Fit(load.Append(ml.Transforms.BeitSegmenter(checkpoint)), input, m => $"PredictedLabel, PredictedLabelSize ({m.LastTransformer.LabelNames.Count} classes)"),
            };
            try
            {
                AtomicFile.Write(zip, tmp => ml.Model.Save(model, input.Schema, tmp));
            }
            finally
            {
                (model as IDisposable)?.Dispose();
            }
            Console.WriteLine($"Wrote {zip} ({new FileInfo(zip).Length / 1e6:F1} MB) in {sw.Elapsed.TotalSeconds:F1} s: {InputColumn} → Image → PixelValues → {outputs}");
            return 0;
        });
        return cmd;
    }

    private static (ITransformer, string) Fit<T>(IEstimator<T> pipeline, IDataView input, Func<T, string> describe) where T : class, ITransformer
    {
        var model = pipeline.Fit(input);
        return (model, describe(model));
    }

    internal sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }
}
