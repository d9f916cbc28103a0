// Training throughput harness: full optimizer steps (forward, backward, AdamW) of BeitForImageClassification on
// random data, fp32 against bf16 autocast, alternating so both see the same machine load. Usage:
//   dotnet run -c Release --project benchmarks/Beit.Training.Benchmarks -- [--threads 2] [--seconds 20] [--base-steps 3]
// and the cost of training-time augmentation (see AugmentationBenchmark.cs):
//   dotnet run -c Release --project benchmarks/Beit.Training.Benchmarks -- --augmentation [--rounds 7]
// issue 16's accuracy bars with no options (Fashion-MNIST 2,000 and 60,000; see AccuracyBars.cs), and the hand-tuned grid:
//   dotnet run -c Release --project benchmarks/Beit.Training.Benchmarks -- --bars [--small-only|--full-only]
//   dotnet run -c Release --project benchmarks/Beit.Training.Benchmarks -- --grid [--grid-seconds 300] [--only <text>]
// the colour bar (synthetic 64×64 shapes, no options) and single explicit settings on the 2,000-image set:
//   dotnet run -c Release --project benchmarks/Beit.Training.Benchmarks -- --shapes
//   dotnet run -c Release --project benchmarks/Beit.Training.Benchmarks -- --exp seconds=420 batch=32 lr=1e-3 aug=1 minscale=0.64
using System.Diagnostics;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Training.Benchmarks;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Optimization;
using static TorchSharp.torch;

int threads = Arg("--threads", 2), seconds = Arg("--seconds", 20), baseSteps = Arg("--base-steps", 3);
// The bars and the grid run as a user's `beit train` does: threads from the idle cores (BeitThreads), unless --threads.
bool userRuns = args.Contains("--bars") || args.Contains("--grid") || args.Contains("--exp") || args.Contains("--shapes");
if (!userRuns || args.Contains("--threads")) set_num_threads(threads);
else set_num_threads(BeitThreads.ForTraining().Threads);
Console.WriteLine($"libtorch threads: {get_num_threads()}");
Console.WriteLine($"CPU: {CpuFeatures.Current.Describe()}; load average {LoadAverage()}");
if (args.Contains("--bars"))
{
    // No set_num_threads here: the bars are the defaults as a user gets them (the trainer's thread choice).
    AccuracyBars.Run(small: !args.Contains("--full-only"), full: !args.Contains("--small-only"));
    return;
}
if (args.Contains("--shapes"))
{
    AccuracyBars.Shapes();
    return;
}
if (args.Contains("--grid"))
{
    int i = Array.IndexOf(args, "--only");
    AccuracyBars.Grid(TimeSpan.FromSeconds(Arg("--grid-seconds", 300)), i >= 0 && i + 1 < args.Length ? args[i + 1] : null);
    return;
}
if (args.Contains("--exp"))
{
    // One explicit setting on the 2,000-image set: key=value pairs (see AccuracyBars.Experiment).
    AccuracyBars.Experiment(args.SkipWhile(a => a != "--exp").Skip(1).ToArray());
    return;
}
if (args.Contains("--augmentation"))
{
    AugmentationBenchmark.Run(Arg("--rounds", 7));
    return;
}
Console.WriteLine($"BEiT training throughput, {threads} libtorch threads, img/s of full AdamW steps (higher is better)");
Console.WriteLine();
Console.WriteLine("| model | batch | fp32 img/s | bf16 autocast img/s | bf16 / fp32 |");
Console.WriteLine("|---|---|---|---|---|");

// The from-scratch default for 28×28 images (Fashion-MNIST): the config the trainer itself picks.
var small = BeitImageClassificationTrainer.DefaultConfig(
    new BeitTrainingImages(new byte[3 * 28 * 28], [0], 28, 28, ["a"]), new BeitImageClassificationTrainer.Options());
small.NumLabels = 10;
Measure($"small (28×28, patch {small.PatchSize}, {small.NumHiddenLayers}×{small.HiddenSize}: the from-scratch default)", small, batch: 128, rounds: 4, stepsPerRound: 0);

// BEiT-base at 224: a few steps only (about 105 GFLOP per image per step).
Measure("BEiT-base (224, patch 16, 12×768)", new BeitConfig
{
    ImageSize = 224, PatchSize = 16, HiddenSize = 768, NumHiddenLayers = 12, NumAttentionHeads = 12, IntermediateSize = 3072,
    UseRelativePositionBias = true, NumLabels = 1000, DropPathRate = 0.1,
}, batch: 8, rounds: 1, stepsPerRound: baseSteps);

void Measure(string name, BeitConfig config, int batch, int rounds, int stepsPerRound)
{
    random.manual_seed(0);
    var model = new BeitForImageClassification(config);
    model.train();
    var settings = LayerwiseParameterGroups.Build(model.named_parameters().Select(p => (p.name, p.parameter)), config.NumHiddenLayers, 0.65, 0.05);
    using var optimizer = new BeitAdamW(settings);
    double Step(bool bf16)
    {
        using var scope = NewDisposeScope();
        using var autocast = bf16 ? BeitAutocast.Enable(ScalarType.BFloat16) : null;
        var x = randn(batch, 3, config.ImageSize, config.ImageSize);
        var y = randint(config.NumLabels, [batch]);
        var loss = model.forward(x, y).Loss!;
        optimizer.ZeroGrad();
        loss.backward();
        optimizer.Step(1e-4);
        return loss.item<float>();
    }
    Step(false); Step(true); // warm-up
    var time = new Dictionary<bool, double> { [false] = 0, [true] = 0 };
    var images = new Dictionary<bool, long> { [false] = 0, [true] = 0 };
    double perRound = stepsPerRound > 0 ? double.MaxValue : seconds / (2.0 * rounds);
    for (int r = 0; r < rounds; r++)
    {
        foreach (bool bf16 in new[] { false, true })
        {
            var sw = Stopwatch.StartNew();
            int steps = 0;
            while ((stepsPerRound > 0 && steps < stepsPerRound) || (stepsPerRound == 0 && sw.Elapsed.TotalSeconds < perRound))
            {
                Step(bf16);
                steps++;
            }
            time[bf16] += sw.Elapsed.TotalSeconds;
            images[bf16] += (long)steps * batch;
        }
    }
    double fp32 = images[false] / time[false], bf = images[true] / time[true];
    Console.WriteLine($"| {name} | {batch} | {fp32:F1} | {bf:F1} | {bf / fp32:F2}× |");
}

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
}

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
