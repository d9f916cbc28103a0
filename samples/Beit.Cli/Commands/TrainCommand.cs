using System.CommandLine;
using Microsoft.ML;
using System.Text.Json;
using Microsoft.ML.Beit.IO;
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
        var folder = new Argument<string?>("folder") { Description = "One subfolder of images per class (the subfolder name is the label), or a folder with MNIST-style IDX files (train-*/t10k-*). Optional with --config.", Arity = ArgumentArity.ZeroOrOne };
        var output = new Option<string?>("--out") { Description = "The model.zip to write (an ML.NET pipeline from an image path or bytes to Score and a string PredictedLabel), with <name>.consumption.cs and <name>.beit.json next to it. Required unless --config gives it." };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Fine-tune this Hugging Face (or beit pretrain) checkpoint folder or Hub model id (org/name[@revision]); default: train a new model sized for the data." };
        var testFraction = new Option<double>("--test-fraction") { Description = "Fraction of each class held out for the test report (IDX folders use their t10k set).", DefaultValueFactory = _ => 0.1 };
        var trainFraction = new Option<double>("--train-fraction") { Description = "Train on only this fraction of each class's training images (a seeded, class-balanced subset; e.g. 0.1 for a few-label run).", DefaultValueFactory = _ => 1.0 };
        var validationFraction = new Option<double?>("--validation-fraction") { Description = "Fraction of the training images used to pick the best epoch (default: chosen from the data)." };
        var patience = new Option<int>("--early-stopping") { Description = "Stop after this many epochs without a better validation accuracy (0: off).", DefaultValueFactory = _ => 0 };
        var augment = new Option<bool>("--no-augment") { Description = "Train without random resized crops and flips (default: augment unless the images are tiny and grey)." };
        var smoothing = new Option<double>("--label-smoothing") { Description = "Label smoothing ε.", DefaultValueFactory = _ => 0.1 };
        var layerDecay = new Option<double?>("--layer-decay") { Description = "Layer-wise learning-rate decay (default 0.65 when fine-tuning, 1 from scratch)." };
        var inputKind = PackageCommand.InputOption();
        var config = new Option<string?>("--config") { Description = "Replay the options of a <name>.beit.json an earlier 'beit train' wrote; options given on this command line win." };
        var common = new TrainingCliOptions(defaultEpochs: null, defaultBatch: null, defaultLr: null);
        var cmd = new Command("train", "Train an image classifier from a folder of labelled images and save model.zip, its consumption code and a replayable config.")
            { folder, output, checkpoint, testFraction, trainFraction, validationFraction, patience, augment, smoothing, layerDecay, inputKind, config };
        common.AddTo(cmd);
        cmd.SetAction((pr, ct) =>
        {
            string[] keys = [folder.Name, .. new Option[] { output, checkpoint, testFraction, trainFraction, validationFraction, patience, augment, smoothing, layerDecay, inputKind }
                .Select(o => o.Name.TrimStart('-')), .. common.Keys];
            var v = new CliValues(pr, pr.GetValue(config), keys);
            string path = v.Get(folder) ?? throw new ArgumentException("give the folder of labelled images (or --config with a replay file).");
            string zip = v.Get(output) ?? throw new ArgumentException("--out is required (or --config with a replay file that has it).");
            v.Record(folder.Name, Path.GetFullPath(path));
            v.Record("out", Path.GetFullPath(zip));
            string? given = v.Get(checkpoint);
            // A local checkpoint is recorded absolute; a Hub model id as given.
            if (given is not null && (Directory.Exists(given) || File.Exists(given))) v.Record("checkpoint", Path.GetFullPath(given));
            string? ckpt = given is string c ? HubModels.Local(c, BeitHubFiles.Configuration | BeitHubFiles.Weights, ct) : null;
            var kind = BeitModelInputs.Parse(v.Get(inputKind)!);
            var options = new BeitImageClassificationTrainer.Options
            {
                CheckpointFolder = ckpt,
                EarlyStoppingPatience = v.Get(patience),
                LabelSmoothing = v.Get(smoothing),
            };
            // Unset flags leave the trainer's automatic choice (BeitTrainingDefaults) in place.
            if (v.Get(validationFraction) is double vf) options.ValidationFraction = vf;
            if (v.Get(augment)) options.Augment = false;
            if (v.Get(layerDecay) is double ld) options.LayerDecay = ld;
            common.Apply(v, options);
            double test0 = v.Get(testFraction), fraction = v.Get(trainFraction);
            if (fraction is <= 0 or > 1) throw new ArgumentOutOfRangeException("--train-fraction", fraction, "must be in (0, 1].");
            string stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(zip))!, Path.GetFileNameWithoutExtension(zip));
            string consumption = stem + ".consumption.cs", replay = stem + ".beit.json";
            // Before the (slow) training: outputs that cannot be written fail now.
            foreach (var target in new[] { zip, consumption, replay }) AtomicFile.CheckWritable(target);

            int? size = options.ImageSize ?? (ckpt is null ? null : BeitConfig.Load(ckpt).ImageSize);
            var all = TrainingCliOptions.LoadImages(path, unlabeled: false, size, out var idxTest);
            var (train, test) = idxTest is null ? all.Split(test0, options.Seed + 1) : (all, idxTest);
            // The kept labels depend only on the seed, so runs with and without a checkpoint see the same images.
            if (fraction < 1) train = train.Split(fraction, options.Seed + 2).Validation;
            AnsiConsole.MarkupLineInterpolated($"[bold]{train.Count:N0}[/] training and [bold]{test.Count:N0}[/] test images at {train.Height}×{train.Width}, {train.ClassNames.Count} classes (the validation split comes out of the training images; the report gives both counts)");

            var report = TrainingCliOptions.WithProgress("training", options, () => BeitModelBuilder.Train(new MLContext(seed: 0), train, test, zip, options, kind, ct));
            AnsiConsole.WriteLine();
            AnsiConsole.Write(report.ToString());
            TrainingPlots.Curves(report.Training.History, "validation accuracy", h => h.ValidationAccuracy, stem + ".curves.png");
            TrainingPlots.ConfusionMatrix(report.Test, stem + ".confusion.png");
            AtomicFile.Write(consumption, tmp => File.WriteAllText(tmp, BeitConsumptionCode.Generate(zip, kind)));
            AtomicFile.Write(replay, tmp => File.WriteAllText(tmp, v.Recorded.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n"));
            // The training report: the same text as printed, and JSON (settings, budget, every search trial, history, test).
            AtomicFile.Write(stem + ".report.txt", tmp => File.WriteAllText(tmp, report.ToString()));
            AtomicFile.Write(stem + ".report.json", tmp => File.WriteAllText(tmp, report.ToJson()));
            string searchPng = "";
            if (report.Training.Search is { Trials.Count: > 0 } search)
            {
                TrainingPlots.Search(search, stem + ".search.png");
                searchPng = $", {stem}.search.png";
            }
            AnsiConsole.MarkupLineInterpolated($"Wrote [bold]{report.ModelPath}[/], {stem}.curves.png, {stem}.confusion.png{searchPng}, {stem}.report.txt and {stem}.report.json");
            AnsiConsole.MarkupLineInterpolated($"Wrote {consumption} (ModelInput, ModelOutput, Predict, PredictAllLabels) and {replay} (replay: beit train --config {replay})");
            return Task.FromResult(0);
        });
        return cmd;
    }
}
