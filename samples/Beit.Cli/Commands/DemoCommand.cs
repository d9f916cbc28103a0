using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using Spectre.Console;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit demo</c>: the README main job on the embedded default. Trains a small BEiT from scratch on Fashion-MNIST
/// (the bundled class-balanced subset; the full set with <c>--full</c> when Debian's dataset-fashion-mnist is
/// installed), evaluates it, saves <c>model.zip</c>, reloads it in a fresh MLContext and predicts image files.
/// </summary>
internal static class DemoCommand
{
    private const string FullDataset = "/usr/share/datasets/fashion-mnist";

    public static Command Create()
    {
        var full = new Option<bool>("--full") { Description = $"Use the full Fashion-MNIST in {FullDataset} (apt-get install dataset-fashion-mnist) instead of the bundled subset." };
        var output = new Option<string>("--out") { Description = "Folder for model.zip, charts, report.json and sample images (default ./beit-demo, ignored by git in this repository).", DefaultValueFactory = _ => "beit-demo" };
        var common = new TrainingCliOptions(defaultEpochs: null, defaultBatch: null, defaultLr: null);
        var cmd = new Command("demo", "The main job: train a small BEiT on Fashion-MNIST (bundled subset), evaluate, save model.zip, reload and predict.") { full, output };
        common.AddTo(cmd);
        cmd.SetAction((pr, ct) =>
        {
            bool useFull = pr.GetValue(full);
            if (useFull && !IdxDataset.Exists(FullDataset, "train"))
                throw new DirectoryNotFoundException($"--full needs {FullDataset}: apt-get install dataset-fashion-mnist");
            string data = useFull ? FullDataset : Path.Combine(Assets.Root, "fashion-mnist");
            var train = IdxDataset.Load(data, "train").ToTrainingImages(IdxDataset.FashionMnistClassNames);
            var test = IdxDataset.Load(data, "t10k").ToTrainingImages(IdxDataset.FashionMnistClassNames);
            AnsiConsole.MarkupLineInterpolated($"Fashion-MNIST ({(useFull ? "full" : "bundled subset")}): [bold]{train.Count:N0}[/] training images (a validation split comes out of these), [bold]{test.Count:N0}[/] test images, 28×28, 10 classes");

            // Only the data: every other setting is the trainer's automatic choice, as `beit train` gets with no flags.
            var options = new BeitImageClassificationTrainer.Options();
            common.Apply(pr, options);
            string dir = Path.GetFullPath(pr.GetValue(output)!);
            Directory.CreateDirectory(dir);
            string zip = Path.Combine(dir, "model.zip");
            var report = TrainingCliOptions.WithProgress("training", options, () => BeitModelBuilder.Train(new MLContext(seed: 0), train, test, zip, options, ct));
            var cfg = report.Training.Model.Config;
            AnsiConsole.MarkupLineInterpolated($"Model: BEiT {cfg.NumHiddenLayers}×{cfg.HiddenSize}, patch {cfg.PatchSize}, {report.Training.Model.parameters().Sum(p => p.numel()):N0} parameters");
            AnsiConsole.MarkupLineInterpolated($"Images: [bold]{report.TrainCount:N0}[/] trained on, [bold]{report.ValidationCount:N0}[/] validation (ranking the search trials and the validation curve), [bold]{report.TestCount:N0}[/] test (never seen in training).");
            AnsiConsole.Write(report.ToString());
            if (report.Training.Search is not null)
                AnsiConsole.MarkupLine("[grey]A time budget makes the number of steps depend on the machine's speed and load, so the accuracy varies from run to run (README gives the spread); --epochs N makes a run reproducible.[/]");
            TrainingPlots.Curves(report.Training.History, "validation accuracy", h => h.ValidationAccuracy, Path.Combine(dir, "curves.png"));
            TrainingPlots.ConfusionMatrix(report.Test, Path.Combine(dir, "confusion.png"));
            if (report.Training.Search is { Trials.Count: > 0 } search) TrainingPlots.Search(search, Path.Combine(dir, "search.png"));
            Microsoft.ML.Beit.IO.AtomicFile.Write(Path.Combine(dir, "report.json"), tmp => File.WriteAllText(tmp, report.ToJson()));

            // Reload the saved pipeline in a fresh context and predict a few test images from PNG files.
            string samples = Path.Combine(dir, "samples");
            Directory.CreateDirectory(samples);
            var rows = new List<ImageInput>();
            for (int i = 0; i < 6; i++)
            {
                string file = Path.Combine(samples, $"test{i}_{test.ClassNames[test.Labels[i]].Replace('/', '-')}.png");
                PngWriter.WriteRgb(file, test.Pixels.AsSpan(i * 3 * 28 * 28, 3 * 28 * 28), 28, 28);
                rows.Add(new ImageInput { ImagePath = file });
            }
            var ml = new MLContext();
            var model = BeitModelZip.Load(ml, zip, out _);
            using var owned = model as IDisposable;
            // The engine owns (and would dispose) the model unless told otherwise; the model is disposed above.
            using var engine = ml.Model.CreatePredictionEngine<ImageInput, Prediction>(model, new PredictionEngineOptions { OwnsTransformer = false });
            var table = new Table().AddColumns("image", "predicted", "probability");
            foreach (var row in rows)
            {
                var p = engine.Predict(row);
                table.AddRow(Path.GetFileName(row.ImagePath), p.PredictedLabel, p.Score.Max().ToString("P1"));
            }
            AnsiConsole.MarkupLine("Reloaded model.zip and predicted:");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLineInterpolated($"Wrote {zip}, curves.png, confusion.png and report.json in {dir}");
            return Task.FromResult(0);
        });
        return cmd;
    }

    private sealed class ImageInput
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class Prediction
    {
        public float[] Score { get; set; } = [];
        public string PredictedLabel { get; set; } = "";
    }
}
