using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;

namespace Microsoft.ML.Beit.Training.Benchmarks;

/// <summary>
/// Issue 16's accuracy bars, measured as a user meets them: <c>beit train &lt;folder&gt; --out model.zip</c> with no other
/// flag is <see cref="BeitModelBuilder.Train"/> with default options, timed from the first step to the evaluated
/// <c>model.zip</c>. Also the hand-tuned grid the defaults are compared with (same data, same time budget each).
/// Fashion-MNIST comes from Debian's <c>dataset-fashion-mnist</c> (<c>/usr/share/datasets/fashion-mnist</c>).
/// </summary>
internal static class AccuracyBars
{
    private const string FullDataset = "/usr/share/datasets/fashion-mnist";

    /// <summary>The 2,000 / 1,000 set: the last 200 training images of each class, the first 100 test images of each class.</summary>
    public static (BeitTrainingImages Train, BeitTrainingImages Test) Small()
    {
        var train = IdxDataset.Load(FullDataset, "train");
        var last = new List<int>();
        var counts = new int[10];
        for (int i = train.Count - 1; i >= 0; i--)
            if (counts[train.Labels[i]]++ < 200) last.Add(i);
        last.Sort();
        var test = IdxDataset.Load(FullDataset, "t10k").PerClassSubset(100);
        return (train.Select(last).ToTrainingImages(IdxDataset.FashionMnistClassNames), test.ToTrainingImages(IdxDataset.FashionMnistClassNames));
    }

    /// <summary>All 60,000 training and 10,000 test images.</summary>
    public static (BeitTrainingImages Train, BeitTrainingImages Test) Full() =>
        (IdxDataset.Load(FullDataset, "train").ToTrainingImages(IdxDataset.FashionMnistClassNames),
         IdxDataset.Load(FullDataset, "t10k").ToTrainingImages(IdxDataset.FashionMnistClassNames));

    /// <summary>The bars: no options at all, as <c>beit train</c> without flags.</summary>
    public static void Run(bool small, bool full)
    {
        if (!IdxDataset.Exists(FullDataset, "train"))
        {
            Console.WriteLine($"{FullDataset} is missing: apt-get install dataset-fashion-mnist");
            return;
        }
        Console.WriteLine("| Data | Bar | Budget | Wall time (train + save + test) | Test accuracy | Macro-F1 | Final run | Load average (min–max) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        if (small) Measure("Fashion-MNIST 2,000 / 1,000", "≥ 78 % in 10 min", Small(), new BeitImageClassificationTrainer.Options());
        if (full) Measure("Fashion-MNIST 60,000 / 10,000", "≥ 88 % in 15 min", Full(), new BeitImageClassificationTrainer.Options());
    }

    /// <summary>
    /// The colour bar: 300 synthetic 64×64 coloured circles, squares and triangles (random colours, sizes and positions;
    /// the generator of the xunit test), 150 unseen test images, no options at all.
    /// </summary>
    public static void Shapes()
    {
        Console.WriteLine("| Data | Bar | Budget | Wall time (train + save + test) | Test accuracy | Macro-F1 | Final run | Load average (min–max) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        Measure("Coloured shapes 300 / 150, 64×64", "a sensible model (chance 33 %)",
            (global::Beit.Tests.SyntheticImages.ColouredShapes(300, 21), global::Beit.Tests.SyntheticImages.ColouredShapes(150, 22)), new BeitImageClassificationTrainer.Options());
    }

    /// <summary>
    /// The grid on the 2,000-image set: learning rate × model size × augmentation, each trained for the same budget
    /// with explicit settings (no search), then the defaults with that budget (search included).
    /// </summary>
    public static void Grid(TimeSpan budget, string? only)
    {
        var (train, test) = Small();
        Console.WriteLine($"Grid on Fashion-MNIST 2,000 / 1,000, {budget.TotalSeconds:F0} s per run");
        Console.WriteLine("| Setting | Budget | Wall time | Test accuracy | Macro-F1 | Final run | Load average (min–max) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        var small = BeitTrainingDefaults.Config(28, 0.05);
        var larger = small.Clone();
        larger.HiddenSize = 192; larger.NumAttentionHeads = 3; larger.IntermediateSize = 384; larger.NumHiddenLayers = 6;
        // One axis at a time around the default (4×128, lr 1e-3, batch 32, crops ≥ 64 % + flips): learning rate ×½ and ×2,
        // no crops and stronger crops, the larger model.
        var rows = new (string Model, BeitConfig Config, double Lr, double? MinScale)[]
        {
            ("4×128", small, 1e-3, 0.64), ("4×128", small, 5e-4, 0.64), ("4×128", small, 2e-3, 0.64),
            ("4×128", small, 1e-3, null), ("4×128", small, 1e-3, 0.35), ("6×192", larger, 1e-3, 0.64),
        };
        foreach (var (model, config, lr, minScale) in rows)
        {
            string name = string.Create(CultureInfo.InvariantCulture, $"{model}, lr {lr:G2}, {(minScale is double m ? $"crops ≥ {m:P0} + flips" : "no augmentation")}");
            if (only is not null && !name.Contains(only, StringComparison.Ordinal)) continue;
            var o = new BeitImageClassificationTrainer.Options
            {
                Config = config.Clone(), LearningRate = lr, Augment = minScale is not null, RandomCropMinScale = minScale ?? 0.64,
                MaxTrainingTime = budget, Epochs = 10_000, // the budget ends the run and paces the schedule
            };
            Measure(name, null, (train, test), o);
        }
        if (only is null || "defaults".Contains(only, StringComparison.Ordinal))
            Measure("defaults (search included)", null, (train, test), new BeitImageClassificationTrainer.Options { MaxTrainingTime = budget });
    }

    /// <summary>
    /// One explicit setting on the 2,000 / 1,000 set, from <c>key=value</c> pairs: seconds, lr, batch, aug (0/1),
    /// minscale, layers, width, heads, mlp, patch, ls (label smoothing), mixup, cutmix, dp (drop path), wd, warmup,
    /// bf16 (0/1), val (validation fraction), epochs (instead of a time budget), full (0/1: the 60,000 set), defaults (0/1).
    /// The colour diagnostics: data (fashion; shapes: the colour bar's, n training images; xunit-shapes: the earlier
    /// 360 / 90 test set), side (model input side), ra and erase (RandAugment magnitude, erasing probability), grey (0/1:
    /// luminance copies), colourlabel (0/1: relabel by the dominant channel), testontrain (0/1: score the training
    /// images), mim (seconds of masked-image-modeling pre-training on the training images first; vocab, mimlr, mimscale, ld).
    /// </summary>
    public static void Experiment(string[] pairs)
    {
        var kv = pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        double D(string k, double d) => kv.TryGetValue(k, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : d;
        var o = new BeitImageClassificationTrainer.Options();
        if (kv.ContainsKey("seconds")) o.MaxTrainingTime = TimeSpan.FromSeconds(D("seconds", 120));
        if (D("defaults", 0) == 0)
        {
            int imageSide = kv.GetValueOrDefault("data", "fashion").EndsWith("shapes", StringComparison.Ordinal) ? 64 : 28;
            imageSide = (int)D("side", imageSide);
            if (kv.ContainsKey("side")) o.ImageSize = imageSide;
            var c = BeitTrainingDefaults.Config(imageSide, D("dp", 0.05));
            c.NumHiddenLayers = (int)D("layers", c.NumHiddenLayers);
            c.HiddenSize = (int)D("width", c.HiddenSize);
            c.NumAttentionHeads = (int)D("heads", c.NumAttentionHeads);
            c.IntermediateSize = (int)D("mlp", 2 * c.HiddenSize);
            c.PatchSize = (int)D("patch", c.PatchSize);
            o.Config = c;
            o.Epochs = kv.ContainsKey("epochs") ? (int)D("epochs", 10) : 10_000;
            if (kv.ContainsKey("lr")) o.LearningRate = D("lr", 2e-3);
            if (kv.ContainsKey("batch")) o.BatchSize = (int)D("batch", 128);
            if (kv.ContainsKey("aug")) o.Augment = D("aug", 0) != 0;
            if (kv.ContainsKey("minscale")) o.RandomCropMinScale = D("minscale", 0.64);
            if (kv.ContainsKey("dp")) o.DropPathRate = D("dp", 0.05);
            if (kv.ContainsKey("warmup")) o.WarmupEpochs = D("warmup", 0.2);
            if (kv.ContainsKey("bf16")) o.Bf16Autocast = D("bf16", 1) != 0;
            if (kv.ContainsKey("val")) o.ValidationFraction = D("val", 0.05);
            o.LabelSmoothing = D("ls", 0.1);
            o.MixupAlpha = D("mixup", 0);
            o.CutmixAlpha = D("cutmix", 0);
            o.WeightDecay = D("wd", 0.05);
        }
        if (kv.ContainsKey("ra")) o.RandAugmentMagnitude = D("ra", 9);
        if (kv.ContainsKey("erase")) o.RandomErasingProbability = D("erase", 0.25);
        (BeitTrainingImages Train, BeitTrainingImages Test) data = kv.GetValueOrDefault("data", "fashion") switch
        {
            "shapes" => (global::Beit.Tests.SyntheticImages.ColouredShapes((int)D("n", 300), 21), global::Beit.Tests.SyntheticImages.ColouredShapes(150, 22)),
            "xunit-shapes" => (global::Beit.Tests.SyntheticImages.ColouredShapes(360, 11), global::Beit.Tests.SyntheticImages.ColouredShapes(90, 12)),
            _ => D("full", 0) != 0 ? Full() : Small(),
        };
        if (D("grey", 0) != 0) data = (data.Train.ToLuminance(), data.Test.ToLuminance());
        if (D("colourlabel", 0) != 0) data = (ColourLabels(data.Train), ColourLabels(data.Test));
        if (D("testontrain", 0) != 0) data = (data.Train, data.Train);
        string? pretrained = null;
        if (kv.ContainsKey("mim"))
        {
            // Masked-image-modeling pre-training on the training images themselves, then fine-tuning from it.
            var clock = Stopwatch.StartNew();
            var mo = new Pretraining.BeitMaskedImageModelingTrainer.Options
            {
                Config = o.Config!.Clone(), MaxTrainingTime = TimeSpan.FromSeconds(D("mim", 60)), Epochs = 10_000, BatchSize = o.BatchSize,
                LearningRate = D("mimlr", 1.5e-3), RandomCropMinScale = D("mimscale", 0.4), ValidationFraction = 0,
            };
            mo.Config.VocabSize = (int)D("vocab", 64);
            mo.KMeans.VocabSize = mo.Config.VocabSize;
            var r = new Pretraining.BeitMaskedImageModelingTrainer(mo).Train(data.Train);
            pretrained = Directory.CreateTempSubdirectory("beit-mim-").FullName;
            Directory.Delete(pretrained);
            Pretraining.BeitMaskedImageModelingTrainer.Save(r, pretrained);
            r.Model.Dispose();
            Console.WriteLine($"mim: {r.History.Count} epochs, last loss {r.History[^1].TrainLoss:F3} in {clock.Elapsed:mm\\:ss}");
            o.Config = null;
            o.CheckpointFolder = pretrained;
            o.LayerDecay = D("ld", 0.75);
            o.LearningRate = D("lr", 1e-3);
        }
        Console.WriteLine("| Setting | Budget | Wall time | Test accuracy | Macro-F1 | Final run | Load average (min–max) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        try
        {
            Measure(string.Join(' ', pairs), null, data, o);
        }
        finally
        {
            if (pretrained is not null) Directory.Delete(pretrained, true);
        }
    }

    // Diagnostics for colour data: the same images relabelled by their dominant channel (grey copies: ToLuminance).
    private static BeitTrainingImages ColourLabels(BeitTrainingImages d)
    {
        int plane = d.Height * d.Width;
        var labels = new int[d.Count];
        for (int i = 0; i < d.Count; i++)
        {
            var sums = new long[3];
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < plane; p++) sums[c] += d.Pixels[(i * 3 + c) * plane + p];
            labels[i] = Array.IndexOf(sums, sums.Max());
        }
        return new BeitTrainingImages(d.Pixels, labels, d.Height, d.Width, ["red", "green", "blue"]);
    }

    private static void Measure(string name, string? bar, (BeitTrainingImages Train, BeitTrainingImages Test) data, BeitImageClassificationTrainer.Options options)
    {
        string dir = Directory.CreateTempSubdirectory("beit-bars-").FullName;
        double minLoad = double.MaxValue, maxLoad = 0;
        void Sample()
        {
            double l = Load1();
            minLoad = Math.Min(minLoad, l);
            maxLoad = Math.Max(maxLoad, l);
        }
        Sample();
        using var timer = new Timer(_ => Sample(), null, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
        try
        {
            var clock = Stopwatch.StartNew();
            var report = BeitModelBuilder.Train(new Microsoft.ML.MLContext(seed: 0), data.Train, data.Test, Path.Combine(dir, "model.zip"), options);
            var wall = clock.Elapsed;
            Sample();
            var s = report.Training.Search;
            string budget = s is null ? "—" : $"{s.Budget:mm\\:ss}";
            string final = (s is null ? "" : s.Winner + ", ") + $"{report.Training.History.Count} epochs"
                + (report.Training.History.Count > 0 ? $" ({report.Training.History[^1].ImagesPerSecond:F0} img/s, last val {report.Training.History[^1].ValidationAccuracy:P1})" : "");
            string row = bar is null
                ? $"| {name} | {budget} | {wall:mm\\:ss} | {report.Test.Accuracy:P1} | {report.Test.MacroF1:F3} | {final} | {minLoad:F1}–{maxLoad:F1} |"
                : $"| {name} | {bar} | {budget} | {wall:mm\\:ss} | {report.Test.Accuracy:P1} | {report.Test.MacroF1:F3} | {final} | {minLoad:F1}–{maxLoad:F1} |";
            Console.WriteLine(row);
            if (s is not null && s.Trials.Count > 0)
                foreach (var line in s.ToString().Split('\n')) Console.WriteLine("    " + line.TrimEnd());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static double Load1() =>
        File.Exists("/proc/loadavg") ? double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture) : double.NaN;
}
