using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using static TorchSharp.torch;

namespace Beit.Tests;

public class BeitImageClassificationTrainerTests
{
    private static readonly string[] Patterns = ["horizontal", "vertical", "checker", "diagonal"];

    // 16×16 images of one of four stripe patterns (the class) at a random phase, plus noise. Position-free, as
    // BEiT with relative position bias only is nearly translation-equivariant.
    internal static BeitTrainingImages PatternImages(int count, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[count * 3 * 16 * 16];
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            int c = labels[i] = i % 4;
            int phase = rng.Next(4);
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++)
                {
                    int v = c switch { 0 => y + phase, 1 => x + phase, 2 => (x / 2 + y / 2) * 2 + phase * 2, _ => x + y + phase };
                    bool bright = c == 2 ? ((x / 2 + y / 2 + phase) % 2 == 0) : (v / 2) % 2 == 0;
                    byte value = (byte)Math.Clamp((bright ? 190 : 70) + rng.Next(-30, 31), 0, 255);
                    for (int ch = 0; ch < 3; ch++) pixels[((i * 3 + ch) * 16 + y) * 16 + x] = value;
                }
        }
        return new BeitTrainingImages(pixels, labels, 16, 16, Patterns);
    }

    internal static BeitConfig TinyConfig() => new()
    {
        ImageSize = 16, PatchSize = 4, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 64,
        UseRelativePositionBias = true,
    };

    [Fact]
    public void TrainerStepReproducesPyTorchAdamWFixture()
    {
        // Fixture: 5 steps of torch.optim.AdamW(all params, lr 1e-3, wd 0.05) on one batch, plain cross-entropy.
        var io = SafeTensors.Read(Path.Combine(Fixtures.Train("cls_relpos_adamw"), "io.safetensors"));
        var config = BeitConfig.Load(Fixtures.Tiny("cls_relpos"));
        var data = BeitTrainingImages.FromNormalizedPixels(io["pixel_values"].ToFloatArray(),
            io["labels"].ToInt64Array().Select(l => (int)l).ToArray(), 32, 32, config.Id2Label.Values.ToList());
        var losses = new List<double>();
        var trainer = new BeitImageClassificationTrainer(new()
        {
            CheckpointFolder = Fixtures.Tiny("cls_relpos"), Epochs = 5, BatchSize = 4, LearningRate = 1e-3, MinLearningRate = 1e-3,
            WarmupEpochs = 0, LayerDecay = 1, WeightDecay = 0.05, ExemptFromWeightDecay = false, DropPathRate = 0,
            LabelSmoothing = 0, Augment = false, ValidationFraction = 0, Seed = 0, Bf16Autocast = false, // float32, as the fixture
            EpochCallback = m => losses.Add(m.TrainLoss),
        });
        var result = trainer.Train(data);
        var expected = io["losses"].ToFloatArray();
        double lossDiff = losses.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(lossDiff <= 1e-4, $"losses differ by {lossDiff:E2}");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = result.Model.forward(BeitTensorsOf(io["pixel_values"])).Logits;
        var reference = BeitTensorsOf(io["logits_after"]);
        float logitDiff = (logits - reference).abs().max().item<float>();
        Assert.True(logitDiff <= 1e-3, $"logits_after differ by {logitDiff:E2}");
    }

    private static Tensor BeitTensorsOf(TensorData t) => tensor(t.ToFloatArray(), t.Shape);

    [Fact]
    public void LearnsASyntheticTaskFromScratch()
    {
        var train = PatternImages(512, 1);
        var test = PatternImages(64, 2);
        var history = new List<BeitEpochMetrics>();
        var result = new BeitImageClassificationTrainer(new()
        {
            Config = TinyConfig(), Epochs = 10, BatchSize = 16, LearningRate = 2e-3, LayerDecay = 1, WarmupEpochs = 1,
            Augment = false, ValidationFraction = 0.1, Seed = 1, EpochCallback = history.Add,
        }).Train(train);
        var (_, accuracy, f1) = BeitImageClassificationTrainer.Evaluate(result.Model, test, 64);
        Assert.True(accuracy >= 0.9, $"test accuracy {accuracy:P1}");
        Assert.True(f1 >= 0.9);
        Assert.Equal(10, history.Count);
        Assert.True(history[^1].TrainLoss < history[0].TrainLoss);
        Assert.All(history, h => Assert.False(double.IsNaN(h.ValidationAccuracy)));
    }

    [Fact]
    public void CancelledRunLeavesOnlyCompleteCheckpointsAndResumesToTheSameResult()
    {
        var data = PatternImages(64, 3);
        using var dir = new TempDir();
        BeitImageClassificationTrainer.Options Options(string? ckpt, Action<BeitEpochMetrics>? cb = null) => new()
        {
            Config = TinyConfig(), Epochs = 4, BatchSize = 16, LearningRate = 2e-3, LayerDecay = 1, WarmupEpochs = 1,
            ValidationFraction = 0.25, DropPathRate = 0.1, MixupAlpha = 0.2, Seed = 7, CheckpointDirectory = ckpt, EpochCallback = cb,
        };
        var straight = new BeitImageClassificationTrainer(Options(null)).Train(data).Model.ToTensorData();

        using var cts = new CancellationTokenSource();
        string ckptDir = Path.Combine(dir, "ckpt");
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new BeitImageClassificationTrainer(Options(ckptDir, m => { if (m.Epoch == 2) cts.Cancel(); })).Train(data, null, cts.Token));
        // Only whole checkpoints: no temporary folders or files left behind.
        var entries = Directory.EnumerateFileSystemEntries(ckptDir, "*", SearchOption.AllDirectories).ToList();
        Assert.DoesNotContain(entries, e => e.Contains(".tmp", StringComparison.Ordinal) || e.Contains(".old-", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(ckptDir, "last", "trainer_state.json")));

        var resumedHistory = new List<BeitEpochMetrics>();
        var resumed = new BeitImageClassificationTrainer(Options(ckptDir, resumedHistory.Add)).Train(data).Model.ToTensorData();
        Assert.Equal(new[] { 3, 4 }, resumedHistory.Select(h => h.Epoch));
        foreach (var (name, t) in straight)
            Assert.True(t.Data.AsSpan().SequenceEqual(resumed[name].Data), $"{name} differs after resume");
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void TimeBudgetStopsWithinABatchWithTheLearningRateAnnealed()
    {
        var steps = new List<BeitTrainingProgress>();
        var epochEnds = new List<BeitTrainingProgress>();
        var history = new List<BeitEpochMetrics>();
        var budget = TimeSpan.FromSeconds(3);
        var wall = System.Diagnostics.Stopwatch.StartNew();
        var result = new BeitImageClassificationTrainer(new()
        {
            Config = TinyConfig(), Epochs = 100_000, BatchSize = 16, LearningRate = 2e-3, MinLearningRate = 1e-6, WarmupEpochs = 0.5,
            Augment = false, ValidationFraction = 0, Seed = 3, MaxTrainingTime = budget, EpochCallback = history.Add,
            Progress = new SynchronousProgress<BeitTrainingProgress>(p => (p.Phase == BeitTrainingPhase.Training ? steps : epochEnds).Add(p)),
        }).Train(PatternImages(64, 5));
        wall.Stop();
        // 100,000 planned epochs would take hours: the clock, not the epoch count or early stopping, ended the run, so it ran
        // at least the budget; every epoch it started is reported once, the last one (possibly partial) included. The last
        // epoch's own clock can end just short of the budget: the budget counts from the call, setup included.
        Assert.True(wall.Elapsed >= budget, $"stopped after {wall.Elapsed}, before the {budget} budget ran out");
        Assert.Equal(Enumerable.Range(1, steps[^1].Epoch), history.Select(h => h.Epoch));
        Assert.All(steps, p => Assert.Equal(100_000, p.Epochs));
        Assert.True(wall.Elapsed < budget + TimeSpan.FromSeconds(5), $"ran {wall.Elapsed} for a {budget} budget");
        // The schedule followed the clock: warm-up to the peak early on, annealed close to the minimum at the end.
        Assert.Equal(2e-3, steps.Max(p => p.LearningRate), 1e-4);
        Assert.True(steps[^1].LearningRate < 0.1 * 2e-3, $"last learning rate {steps[^1].LearningRate}");
        Assert.True(steps[^1].Remaining <= budget);
        Assert.False(result.Model.training);
        // The same record ends every epoch: one per epoch, after its last step, with the epoch's loss and no validation metric.
        Assert.Equal(history.Select(h => h.Epoch), epochEnds.Select(p => p.Epoch));
        Assert.All(epochEnds.Zip(history), t => Assert.Equal(t.Second.TrainLoss, t.First.Loss, 12));
        Assert.All(epochEnds, p => Assert.True(double.IsNaN(p.Metric)));
        Assert.Equal(steps[^1].Step, epochEnds[^1].Step);
        Assert.Equal(Enumerable.Range(1, steps.Count).Select(i => (long)i), steps.Select(p => p.Step));

        // A budget smaller than one step still takes one step and reports one (partial) epoch.
        steps.Clear();
        history.Clear();
        new BeitImageClassificationTrainer(new()
        {
            Config = TinyConfig(), Epochs = 3, BatchSize = 16, Augment = false, ValidationFraction = 0, MaxTrainingTime = TimeSpan.FromTicks(1),
            EpochCallback = history.Add, Progress = new SynchronousProgress<BeitTrainingProgress>(p => { if (p.Phase == BeitTrainingPhase.Training) steps.Add(p); }),
        }).Train(PatternImages(64, 5));
        Assert.Single(steps);
        Assert.Single(history);
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    [Fact]
    public void FineTuningFromASharedBiasCheckpointCopiesTheTableIntoEveryLayer()
    {
        var (config, tensors) = BeitCheckpoint.Load(Fixtures.Tiny("mim_shared"));
        var (expanded, t) = Microsoft.ML.Beit.Training.FineTuningCheckpoint.ExpandSharedRelativePositionBias(config, tensors);
        Assert.False(expanded.UseSharedRelativePositionBias);
        Assert.True(expanded.UseRelativePositionBias);
        var shared = tensors["beit.encoder.relative_position_bias.relative_position_bias_table"];
        for (int i = 0; i < config.NumHiddenLayers; i++)
            Assert.Equal(shared.Data, t[$"beit.encoder.layer.{i}.attention.attention.relative_position_bias.relative_position_bias_table"].Data);

        var images = PatternImages(8, 4);
        var data = new BeitTrainingImages(new byte[8 * 3 * config.ImageSize * config.ImageSize], images.Labels, config.ImageSize, config.ImageSize, Patterns);
        var result = new BeitImageClassificationTrainer(new()
        {
            CheckpointFolder = Fixtures.Tiny("mim_shared"), Epochs = 1, BatchSize = 8, ValidationFraction = 0, Augment = false,
        }).Train(data);
        Assert.Equal(4, result.Model.Config.NumLabels);
        Assert.False(result.Model.Config.UseSharedRelativePositionBias);
    }

    [Fact]
    public void RejectsImpossibleOptions()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BeitImageClassificationTrainer(new() { Epochs = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BeitImageClassificationTrainer(new() { LayerDecay = 1.5 }));
        Assert.Throws<ArgumentException>(() => new BeitImageClassificationTrainer(new() { CheckpointFolder = "x", Config = TinyConfig() }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BeitImageClassificationTrainer(new() { MaxTrainingTime = TimeSpan.Zero }));
        Assert.Equal("RandAugmentMagnitude", Assert.Throws<ArgumentOutOfRangeException>(() => new BeitImageClassificationTrainer(new() { RandAugmentMagnitude = 11 })).ParamName);
        Assert.Equal("RandomErasingProbability", Assert.Throws<ArgumentOutOfRangeException>(() => new BeitImageClassificationTrainer(new() { RandomErasingProbability = -0.1 })).ParamName);
    }
}
