using System.CommandLine;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Hub;
using Microsoft.ML.Beit.Training.ImageClassification;
using Spectre.Console;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit train &lt;folder-of-labelled-subfolders&gt; --out model.zip [--checkpoint &lt;hf-folder&gt;] [--epochs N] ...</c>:
/// Model Builder-style training with a live progress bar, an evaluation report and PNG charts.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var folder = new Argument<string>("folder") { Description = "One subfolder of images per class (the subfolder name is the label), or a folder with MNIST-style IDX files (train-*/t10k-*)." };
        var output = new Option<string>("--out") { Description = "The model.zip to write (an ML.NET pipeline from image paths to PredictedLabel).", Required = true };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Fine-tune this Hugging Face (or beit pretrain) checkpoint folder or Hub model id (org/name[@revision]); default: train a new model sized for the data." };
        var testFraction = new Option<double>("--test-fraction") { Description = "Fraction of each class held out for the test report (IDX folders use their t10k set).", DefaultValueFactory = _ => 0.1 };
        var trainFraction = new Option<double>("--train-fraction") { Description = "Train on only this fraction of each class's training images (a seeded, class-balanced subset; e.g. 0.1 for a few-label run).", DefaultValueFactory = _ => 1.0 };
        var validationFraction = new Option<double?>("--validation-fraction") { Description = "Fraction of the training images used to pick the best epoch (default: chosen from the data)." };
        var patience = new Option<int>("--early-stopping") { Description = "Stop after this many epochs without a better validation accuracy (0: off).", DefaultValueFactory = _ => 0 };
        var augment = new Option<bool>("--no-augment") { Description = "Train without random resized crops and flips (default: augment unless the images are tiny and grey)." };
        var smoothing = new Option<double>("--label-smoothing") { Description = "Label smoothing ε.", DefaultValueFactory = _ => 0.1 };
        var layerDecay = new Option<double?>("--layer-decay") { Description = "Layer-wise learning-rate decay (default 0.65 when fine-tuning, 1 from scratch)." };
        var common = new TrainingCliOptions(defaultEpochs: null, defaultBatch: null, defaultLr: null);
        var cmd = new Command("train", "Train an image classifier from a folder of labelled images and save model.zip.")
            { folder, output, checkpoint, testFraction, trainFraction, validationFraction, patience, augment, smoothing, layerDecay };
        common.AddTo(cmd);
        cmd.SetAction((pr, ct) =>
        {
            string path = pr.GetValue(folder)!, zip = pr.GetValue(output)!;
            string? ckpt = pr.GetValue(checkpoint) is string c ? HubModels.Local(c, BeitHubFiles.Configuration | BeitHubFiles.Weights, ct) : null;
            var options = new BeitImageClassificationTrainer.Options
            {
                CheckpointFolder = ckpt,
                EarlyStoppingPatience = pr.GetValue(patience),
                LabelSmoothing = pr.GetValue(smoothing),
            };
            // Unset flags leave the trainer's automatic choice (BeitTrainingDefaults) in place.
            if (pr.GetValue(validationFraction) is double vf) options.ValidationFraction = vf;
            if (pr.GetValue(augment)) options.Augment = false;
            if (pr.GetValue(layerDecay) is double ld) options.LayerDecay = ld;
            common.Apply(pr, options);
            int? size = options.ImageSize ?? (ckpt is null ? null : BeitConfig.Load(ckpt).ImageSize);
            var all = TrainingCliOptions.LoadImages(path, unlabeled: false, size, out var idxTest);
            var (train, test) = idxTest is null ? all.Split(pr.GetValue(testFraction), options.Seed + 1) : (all, idxTest);
            double fraction = pr.GetValue(trainFraction);
            if (fraction is <= 0 or > 1) throw new ArgumentOutOfRangeException("--train-fraction", fraction, "must be in (0, 1].");
            // The kept labels depend only on the seed, so runs with and without a checkpoint see the same images.
            if (fraction < 1) train = train.Split(fraction, options.Seed + 2).Validation;
            AnsiConsole.MarkupLineInterpolated($"[bold]{train.Count:N0}[/] training and [bold]{test.Count:N0}[/] test images at {train.Height}×{train.Width}, {train.ClassNames.Count} classes (the validation split comes out of the training images; the report gives both counts)");

            var report = TrainingCliOptions.WithProgress("training", options, () => BeitModelBuilder.Train(train, test, zip, options, ct));
            AnsiConsole.WriteLine();
            AnsiConsole.Write(report.ToString());
            string stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(zip))!, Path.GetFileNameWithoutExtension(zip));
            TrainingPlots.Curves(report.Training.History, "validation accuracy", h => h.ValidationAccuracy, stem + ".curves.png");
            TrainingPlots.ConfusionMatrix(report.Test, stem + ".confusion.png");
            // The training report: the same text as printed, and JSON (settings, budget, every search trial, history, test).
            Microsoft.ML.Beit.IO.AtomicFile.Write(stem + ".report.txt", tmp => File.WriteAllText(tmp, report.ToString()));
            Microsoft.ML.Beit.IO.AtomicFile.Write(stem + ".report.json", tmp => File.WriteAllText(tmp, report.ToJson()));
            string searchPng = "";
            if (report.Training.Search is { Trials.Count: > 0 } search)
            {
                TrainingPlots.Search(search, stem + ".search.png");
                searchPng = $", {stem}.search.png";
            }
            AnsiConsole.MarkupLineInterpolated($"Wrote [bold]{report.ModelPath}[/], {stem}.curves.png, {stem}.confusion.png{searchPng}, {stem}.report.txt and {stem}.report.json");
            return Task.FromResult(0);
        });
        return cmd;
    }
}
