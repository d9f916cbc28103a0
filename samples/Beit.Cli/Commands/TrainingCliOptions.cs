using System.CommandLine;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using Spectre.Console;

namespace Beit.Cli.Commands;

/// <summary>Flags shared by <c>beit train</c> and <c>beit pretrain</c>, and their live progress display.</summary>
// Null defaults leave the option unset, so the classification trainer chooses it from the data (BeitTrainingDefaults).
internal sealed class TrainingCliOptions(int? defaultEpochs, int? defaultBatch, double? defaultLr)
{
    public Option<int?> Epochs { get; } = new("--epochs") { Description = "Passes over the training images" + Auto(defaultEpochs) };
    public Option<int?> BatchSize { get; } = new("--batch-size") { Description = "Images per optimizer step" + Auto(defaultBatch) };
    public Option<double?> LearningRate { get; } = new("--lr") { Description = "Peak learning rate" + Auto(defaultLr) };
    public Option<int?> ImageSize { get; } = new("--image-size") { Description = "Model input side (default: the checkpoint's, or the images' for a new model)." };
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed of every random choice.", DefaultValueFactory = _ => 0 };
    public Option<bool> Bf16 { get; } = new("--bf16") { Description = "bfloat16 autocast of linear layers (default: on only where the CPU has AVX-512 BF16 or AMX; elsewhere libtorch emulates bf16, 15-40x slower)." };
    public Option<int?> Threads { get; } = new("--threads") { Description = "libtorch threads (default: the physical cores not busy with other work, from the load average)." };
    public Option<double?> MaxMinutes { get; } = new("--max-minutes") { Description = "Training-time budget in minutes: stops within one batch of it, and the learning-rate schedule anneals by then (--epochs becomes an upper bound)." };
    public Option<string?> Time { get; } = new("--time") { Description = "Training-time budget, e.g. 90s, 5m, 1h30m (the main knob): a short successive-halving search over learning rate, augmentation and model size, then the winner trains to the end. Default: chosen from the data size and printed." };
    public Option<string?> CheckpointDir { get; } = new("--checkpoint-dir") { Description = "Write a checkpoint after every epoch here, and resume from it." };
    public Option<string> Device { get; } = new("--device") { Description = "cpu or cuda.", DefaultValueFactory = _ => "cpu" };
    public Option<string?> ModelConfig { get; } = new("--model-config") { Description = "A config.json for a new model (default: one sized for the data)." };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Epochs, BatchSize, LearningRate, ImageSize, Seed, Bf16, Threads, MaxMinutes, Time, CheckpointDir, Device, ModelConfig }) cmd.Options.Add(o);
    }

    /// <summary>The option names, without dashes, as a replay file spells them.</summary>
    public IEnumerable<string> Keys => new Option[] { Epochs, BatchSize, LearningRate, ImageSize, Seed, Bf16, Threads, MaxMinutes, Time, CheckpointDir, Device, ModelConfig }
        .Select(o => o.Name.TrimStart('-'));

    public void Apply(ParseResult pr, BeitTrainerOptions o) => Apply(new CliValues(pr, null, []), o);

    /// <summary>Sets <paramref name="o"/> from the command line or a replay file (see <see cref="CliValues"/>).</summary>
    public void Apply(CliValues v, BeitTrainerOptions o)
    {
        if ((v.Get(Epochs) ?? defaultEpochs) is int epochs) o.Epochs = epochs;
        if ((v.Get(BatchSize) ?? defaultBatch) is int batch) o.BatchSize = batch;
        if ((v.Get(LearningRate) ?? defaultLr) is double lr) o.LearningRate = lr;
        o.ImageSize = v.Get(ImageSize);
        o.Seed = v.Get(Seed);
        if (v.Get(Bf16)) o.Bf16Autocast = true;
        o.Device = v.Get(Device) ?? "cpu";
        o.NumThreads = v.Get(Threads);
        if (o.NumThreads is null && o.Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase))
        {
            // Not more threads than idle cores: one shared core stalls every libtorch thread (BeitThreads).
            var (threads, reason) = BeitThreads.ForTraining();
            o.NumThreads = threads;
            AnsiConsole.MarkupLineInterpolated($"[grey]{reason}; --threads overrides[/]");
        }
        o.MaxTrainingTime = v.Get(MaxMinutes) is double m ? TimeSpan.FromMinutes(m) : null;
        if (v.Get(Time) is string time)
        {
            if (o.MaxTrainingTime is not null) throw new ArgumentException("Give --time or --max-minutes, not both.");
            o.MaxTrainingTime = ParseDuration(time);
        }
        o.CheckpointDirectory = Absolute(v, CheckpointDir);
        if (Absolute(v, ModelConfig) is string config) o.Config = Microsoft.ML.Beit.BeitConfig.Load(config);
    }

    // A path option, recorded absolute so a replay runs the same from any folder.
    private static string? Absolute(CliValues v, Option<string?> option)
    {
        if (v.Get(option) is not string path) return null;
        v.Record(option.Name.TrimStart('-'), Path.GetFullPath(path));
        return path;
    }

    /// <summary>A duration such as <c>90s</c>, <c>5m</c>, <c>1h30m</c> or <c>2.5m</c>; a bare number is minutes.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text.Trim(), @"^(?:(?<h>\d+(?:\.\d+)?)h)?(?:(?<m>\d+(?:\.\d+)?)m)?(?:(?<s>\d+(?:\.\d+)?)s)?$|^(?<bare>\d+(?:\.\d+)?)$");
        double Part(string g) => match.Groups[g].Success ? double.Parse(match.Groups[g].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
        double seconds = match.Success ? Part("h") * 3600 + Part("m") * 60 + Part("s") + Part("bare") * 60 : 0;
        if (!match.Success || seconds <= 0 || seconds > TimeSpan.FromDays(7).TotalSeconds)
            throw new ArgumentException($"--time '{text}': give a positive duration up to 7 days such as 90s, 5m or 1h30m.");
        return TimeSpan.FromSeconds(seconds);
    }

    private static string Auto<T>(T? value) where T : struct =>
        value is T v ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $" (default {v}).") : " (default: chosen from the data).";

    /// <summary>Images from a folder of class subfolders (or any images when unlabeled), or from MNIST-style IDX files.</summary>
    public static BeitTrainingImages LoadImages(string folder, bool unlabeled, int? size, out BeitTrainingImages? idxTest)
    {
        idxTest = null;
        if (IdxDataset.Exists(folder, "train"))
        {
            var names = IdxDataset.Exists(folder, "t10k") || folder.Contains("fashion", StringComparison.OrdinalIgnoreCase) ? IdxDataset.FashionMnistClassNames : null;
            if (IdxDataset.Exists(folder, "t10k")) idxTest = IdxDataset.Load(folder, "t10k").ToTrainingImages(names);
            return IdxDataset.Load(folder, "train").ToTrainingImages(names);
        }
        int side = size ?? ProbeSize(folder);
        var result = AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("reading images");
                var progress = new CallbackProgress<int>(n => task.Value = n);
                int total = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Count(f => BeitImageFolder.ImageExtensions.Contains(Path.GetExtension(f)));
                task.MaxValue = Math.Max(1, total);
                return unlabeled ? BeitImageFolder.LoadUnlabeled(folder, side, progress: progress) : BeitImageFolder.Load(folder, side, progress: progress);
            });
        foreach (var (path, reason) in result.Skipped) AnsiConsole.MarkupLineInterpolated($"[yellow]skipped[/] {path}: {reason}");
        if (!unlabeled)
        {
            AnsiConsole.MarkupLineInterpolated($"Classes: {string.Join(", ", result.ClassCounts.Select(kv => $"{kv.Key} ({kv.Value})"))}");
            foreach (var w in result.BalanceWarnings()) AnsiConsole.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
        }
        return result.Images;
    }

    // A new model's side: the first image's shorter side, kept between 16 and 224.
    private static int ProbeSize(string folder)
    {
        var first = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .FirstOrDefault(f => BeitImageFolder.ImageExtensions.Contains(Path.GetExtension(f)))
            ?? throw new InvalidDataException($"'{folder}' holds no images.");
        var image = Microsoft.ML.Beit.Processing.ImageDecoder.Decode(first);
        return Math.Clamp(Math.Min(image.Width, image.Height), 16, 224);
    }

    /// <summary>Runs <paramref name="train"/> under a live progress bar showing loss, throughput and ETA.</summary>
    public static T WithProgress<T>(string title, BeitTrainerOptions options, Func<T> train)
    {
        T result = default!;
        var previousCallback = options.EpochCallback;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: 1000);
                options.Progress = new CallbackProgress<BeitTrainingProgress>(p =>
                {
                    if (p.Phase == BeitTrainingPhase.Tokenizer)
                    {
                        if (p.Message is string msg) AnsiConsole.MarkupLineInterpolated($"[grey]{msg}[/]");
                        return;
                    }
                    if (p.Phase != BeitTrainingPhase.Training) return; // epoch ends print through EpochCallback below
                    // The whole run's fraction (search trials and final run, by time) when the search runs, else epochs.
                    task.Value = 1000 * (p.OverallFraction ?? (p.Epoch - 1 + (double)p.Batch / p.Batches) / p.Epochs);
                    string stage = p.Stage is null ? "" : Markup.Escape(p.Stage) + " ";
                    task.Description = $"{title} {stage}epoch {p.Epoch}/{p.Epochs} loss {p.Loss:F4} {p.ImagesPerSecond:F0} img/s ETA {p.Remaining:hh\\:mm\\:ss}";
                });
                options.EpochCallback = m =>
                {
                    previousCallback?.Invoke(m);
                    string valid = double.IsNaN(m.ValidationAccuracy) ? "" : $", validation loss {m.ValidationLoss:F4}, accuracy {m.ValidationAccuracy:P2}"
                        + (double.IsNaN(m.ValidationMeanIoU) ? "" : $", mIoU {m.ValidationMeanIoU:F3}");
                    AnsiConsole.MarkupLineInterpolated($"epoch {m.Epoch}: train loss {m.TrainLoss:F4}{valid} ({m.ImagesPerSecond:F0} img/s, {m.Elapsed:hh\\:mm\\:ss})");
                };
                result = train();
                task.Value = task.MaxValue;
            });
        return result;
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls back on the reporting thread (no synchronisation context hop).</summary>
internal sealed class CallbackProgress<T>(Action<T> callback) : IProgress<T>
{
    public void Report(T value) => callback(value);
}
