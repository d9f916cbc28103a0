using System.Text.Json;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using Xunit.Abstractions;
using Defaults = Microsoft.ML.Beit.Training.ImageClassification.BeitTrainingDefaults;
using Search = Microsoft.ML.Beit.Training.ImageClassification.BeitHyperparameterSearch;

namespace Beit.Tests;

public class BeitHyperparameterSearchTests(ITestOutputHelper output)
{
    private static readonly CpuFeatures Avx2Only = new(true, false, false, false, false);
    private static readonly Defaults.DataStats Fm2000 = new(2000, 28, 28, Grey: true, Classes: 10);

    private static BeitImageClassificationTrainer.Options Resolved(BeitImageClassificationTrainer.Options user, Defaults.DataStats data) =>
        Defaults.Apply(user, Defaults.Choose(data, Avx2Only, user));

    [Fact]
    public void TheBudgetIsChosenFromTheDataUnlessGivenOrBoundedByExplicitEpochs()
    {
        Assert.Equal(TimeSpan.FromMinutes(8), Search.Budget(new BeitImageClassificationTrainer.Options(), Fm2000)!.Value.Budget);
        // √ of the pixels: 60,000 images would get 44 min, capped at 13.5 (the 15-minute bar leaves room for loading and testing).
        Assert.Equal(TimeSpan.FromMinutes(13.5), Search.Budget(new BeitImageClassificationTrainer.Options(), Fm2000 with { Count = 60000 })!.Value.Budget);
        Assert.Equal(TimeSpan.FromMinutes(1), Search.Budget(new BeitImageClassificationTrainer.Options(), Fm2000 with { Count = 20 })!.Value.Budget);
        // 3,000 images: 8 min × √1.5 = 9 min 48 s, rounded to 10 s.
        Assert.Equal(TimeSpan.FromSeconds(590), Search.Budget(new BeitImageClassificationTrainer.Options(), Fm2000 with { Count = 3000 })!.Value.Budget);
        var given = Search.Budget(new BeitImageClassificationTrainer.Options { MaxTrainingTime = TimeSpan.FromSeconds(42), Epochs = 3 }, Fm2000)!.Value;
        Assert.Equal((TimeSpan.FromSeconds(42), "given"), given);
        Assert.Null(Search.Budget(new BeitImageClassificationTrainer.Options { Epochs = 3 }, Fm2000));
        Assert.Null(Search.Budget(new BeitImageClassificationTrainer.Options { CheckpointDirectory = "ckpt" }, Fm2000));
    }

    [Fact]
    public void TheSearchCoversOnlyTheSettingsLeftUnset()
    {
        var user = new BeitImageClassificationTrainer.Options();
        var all = Search.Candidates(user, Resolved(user, Fm2000), 28);
        Assert.Equal(5, all.Count);
        // The automatic choice first (ties keep it), then lr ×½ and ×2, stronger crops (never none), a larger model.
        Assert.Equal((1e-3, true, 0.64, "4×128"), (all[0].LearningRate, all[0].Augment, all[0].RandomCropMinScale, all[0].Model));
        Assert.Equal([5e-4, 2e-3], all.Skip(1).Take(2).Select(c => c.LearningRate));
        Assert.True(all[3].Augment && all[3].RandomCropMinScale == 0.35 && all[3].Model == "4×128");
        Assert.Equal(("6×192", true, 0.64), (all[4].Model, all[4].Augment, all[4].RandomCropMinScale));
        Assert.All(all, c => Assert.True(c.Augment));
        Assert.Equal(all.Count, all.Select(c => c.Name).Distinct().Count());

        var lrGiven = new BeitImageClassificationTrainer.Options { LearningRate = 1e-3 };
        Assert.All(Search.Candidates(lrGiven, Resolved(lrGiven, Fm2000), 28), c => Assert.Equal(1e-3, c.LearningRate));
        var augGiven = new BeitImageClassificationTrainer.Options { Augment = false, Config = BeitImageClassificationTrainerTests.TinyConfig() };
        Assert.Equal(3, Search.Candidates(augGiven, Resolved(augGiven, Fm2000), 28).Count); // lr only

        // Fine-tuning a checkpoint: the paper's recipe (layer decay 0.65, small lr), and only the learning rate is searched.
        var ft = new BeitImageClassificationTrainer.Options { CheckpointFolder = "some/checkpoint" };
        var resolved = Resolved(ft, Fm2000);
        Assert.Equal(0.65, resolved.LayerDecay);
        var lrs = Search.Candidates(ft, resolved, 28);
        Assert.Equal(3, lrs.Count);
        Assert.All(lrs, c => Assert.Equal(("checkpoint", resolved.Augment), (c.Model, c.Augment)));
        Assert.Equal([resolved.LearningRate, resolved.LearningRate / 2, resolved.LearningRate * 2], lrs.Select(c => c.LearningRate));

        // Few colour images from scratch: luminance only, and colour as a sixth setting; none when the user chose.
        var shapes = new Defaults.DataStats(300, 64, 64, Grey: false, Classes: 3);
        var colour = Search.Candidates(user, Resolved(user, shapes), 64);
        Assert.Equal(6, colour.Count);
        Assert.All(colour.SkipLast(1), c => Assert.True(c.LuminanceOnly, c.Name));
        Assert.Equal((false, "lr 0.001, crops ≥ 35 % + flips, 6×128, colour"), (colour[^1].LuminanceOnly, colour[^1].Name));
        Assert.EndsWith(", luminance", colour[0].Name);
        var colourGiven = new BeitImageClassificationTrainer.Options { LuminanceOnly = false };
        Assert.Equal(5, Search.Candidates(colourGiven, Resolved(colourGiven, shapes), 64).Count);
        Assert.All(Search.Candidates(colourGiven, Resolved(colourGiven, shapes), 64), c => Assert.False(c.LuminanceOnly));
    }

    [Fact]
    public void SuccessiveHalvingKeepsTheBestThirdWithThreeTimesTheTimeAndPlansTheFinalRunFromTheWinnersSpeed()
    {
        var user = new BeitImageClassificationTrainer.Options { MaxTrainingTime = TimeSpan.FromMinutes(3) };
        var o = Resolved(user, Fm2000);
        var runs = new List<(double Lr, bool Augment, int Layers, TimeSpan Budget)>();
        // A stand-in for training: accuracy peaks at lr 4e-3 and gains from augmentation only with the longer budget;
        // every run "takes" a tenth of a second per epoch and runs 5 epochs per second of budget.
        var captured = new List<(double Lr, int Rung, Dictionary<string, TensorData> Weights)>();
        (IReadOnlyList<BeitEpochMetrics>, Dictionary<string, TensorData>?) Fake(BeitImageClassificationTrainer.Options t, bool keepWeights)
        {
            runs.Add((t.LearningRate, t.Augment, t.Config?.NumHiddenLayers ?? 4, t.MaxTrainingTime!.Value));
            Assert.Null(t.InitialWeights); // every trial starts from scratch
            Dictionary<string, TensorData>? w = null;
            if (keepWeights)
            {
                w = new Dictionary<string, TensorData>();
                captured.Add((t.LearningRate, runs.Count > 5 ? 1 : 0, w));
            }
            Assert.Null(t.EpochCallback);
            Assert.Equal(0, t.EarlyStoppingPatience);
            double accuracy = 0.5 - Math.Abs(Math.Log2(t.LearningRate / 4e-3)) * 0.1 + (t.Augment && t.MaxTrainingTime > TimeSpan.FromSeconds(10) ? 0.2 : 0)
                - (t.Config?.NumHiddenLayers == 6 ? 0.05 : 0);
            int epochs = (int)(t.MaxTrainingTime.Value.TotalSeconds * 5);
            return (Enumerable.Range(1, epochs).Select(e => new BeitEpochMetrics(e, 1, 1, accuracy, accuracy, double.NaN, TimeSpan.Zero, 100)).ToList(), w);
        }
        var (final, report) = Search.Run(user, o, Fm2000, 1900, validationCount: 10_000, Fake, default, null);
        Assert.NotNull(report);
        output.WriteLine(report.ToString());

        // 5 settings × s, then 2 × 3s: 11 units in 15 % of 3 min, so s = 27 s / 11.
        var s = TimeSpan.FromMinutes(3) * 0.15 / 11;
        Assert.Equal(7, runs.Count);
        Assert.All(runs.Take(5), r => Assert.Equal(s, r.Budget));
        Assert.All(runs.Skip(5), r => Assert.Equal(s * 3, r.Budget));
        // Rung 0 keeps lr 2e-3 (0.4) and the default lr 1e-3 (0.3, earlier than the stronger crops' 0.3); rung 1 prefers 2e-3.
        Assert.Equal([true, false, true, false, false], report.Trials.Take(5).Select(t => t.Kept));
        Assert.Equal([(1e-3, 0), (2e-3, 1)], report.Trials.Skip(5).Select(t => (t.LearningRate, t.Kept ? 1 : 0)));
        Assert.Equal(2e-3, final.LearningRate);
        Assert.Equal(report.Trials.Single(t => t.Rung == 1 && t.Kept).Name, report.Winner);
        // The rest of the budget goes to the final run, its epochs planned from the winner's measured training speed
        // (100 img/s in the fake), 20 % over, as the time budget paces the schedule: 1.2 × ~180 s × 100 / 1,900 = 11.4.
        Assert.True(final.MaxTrainingTime > TimeSpan.FromMinutes(2.9), $"{final.MaxTrainingTime}");
        Assert.Equal(11, final.Epochs);
        Assert.Equal(final.Epochs, report.FinalEpochs);
        // Only the deciding rung keeps its weights, and the final run starts from the winner's (a warm restart).
        Assert.Equal([(1e-3, 1), (2e-3, 1)], captured.Select(c => (c.Lr, c.Rung)));
        Assert.Same(captured[1].Weights, final.InitialWeights);
        Assert.True(report.FinalStartsFromWinningTrial);
        Assert.EndsWith("starting from the winning trial's weights.", report.ToString());

        // On 100 validation images a 10-point lead is noise (the margin is 2·√(2·0.5·0.5/100) ≈ 14 points at 50 %), so
        // the automatic choice stays: the prior wins unless a challenger beats it clearly.
        runs.Clear();
        captured.Clear();
        var (noisy, noisyReport) = Search.Run(user, o, Fm2000, 1900, validationCount: 100, Fake, default, null);
        Assert.Equal(o.LearningRate, noisy.LearningRate);
        Assert.Equal(report.Trials.Count, noisyReport!.Trials.Count);
        Assert.Equal(0.14, Search.NoiseMargin(0.5, 100), 2);
        Assert.Equal(0.045, Search.NoiseMargin(0.5, 1000), 3);
        Assert.Equal(0, Search.NoiseMargin(0.5, 0));

        using var json = JsonDocument.Parse(report.ToJson());
        Assert.Equal(180, json.RootElement.GetProperty("budgetSeconds").GetDouble());
        Assert.Equal(7, json.RootElement.GetProperty("trials").GetArrayLength());
        Assert.Equal(1, json.RootElement.GetProperty("trials")[6].GetProperty("rung").GetInt32());
        Assert.Contains("pruned", report.ToString());
    }

    [Fact]
    public void NoSearchWithoutValidationOrTimeButTheBudgetStillBoundsTheRun()
    {
        var user = new BeitImageClassificationTrainer.Options { MaxTrainingTime = TimeSpan.FromSeconds(20) };
        var o = Resolved(user, Fm2000);
        var (final, report) = Search.Run(user, o, Fm2000, 1900, 100, (_, _) => throw new InvalidOperationException("no trial expected"), default, null);
        Assert.Empty(report!.Trials);
        Assert.Contains("per trial", report.Note);
        Assert.Equal(o.Epochs, final.Epochs);
        Assert.True(final.MaxTrainingTime <= TimeSpan.FromSeconds(20));
        var (_, noValidation) = Search.Run(new BeitImageClassificationTrainer.Options(), Resolved(new(), Fm2000), Fm2000, 1900, 0, (_, _) => throw new InvalidOperationException(), default, null);
        Assert.Contains("no validation split", noValidation!.Note);
        var resuming = new BeitImageClassificationTrainer.Options { MaxTrainingTime = TimeSpan.FromMinutes(5), CheckpointDirectory = "ckpt" };
        var (resumed, resumingReport) = Search.Run(resuming, Resolved(resuming, Fm2000), Fm2000, 1900, 100, (_, _) => throw new InvalidOperationException(), default, null);
        Assert.Contains("checkpoint directory", resumingReport!.Note);
        Assert.Equal("ckpt", resumed.CheckpointDirectory);
        var explicitEpochs = new BeitImageClassificationTrainer.Options { Epochs = 2 };
        Assert.Null(Search.Run(explicitEpochs, Resolved(explicitEpochs, Fm2000), Fm2000, 1900, 100, (_, _) => throw new InvalidOperationException(), default, null).Report);
    }

    [Fact]
    public void ThreadsLeaveBusyCoresToTheirWork()
    {
        Assert.Equal(2, BeitThreads.Choose(2, 0.3));
        Assert.Equal(1, BeitThreads.Choose(2, 1.0)); // one core busy: a second libtorch thread would stall the first
        Assert.Equal(1, BeitThreads.Choose(2, 25));
        Assert.Equal(6, BeitThreads.Choose(8, 2.4));
        Assert.Equal(1, BeitThreads.Choose(0, double.NaN));
        var (threads, reason) = BeitThreads.ForTraining();
        Assert.InRange(threads, 1, Environment.ProcessorCount);
        Assert.Contains("busy with other work", reason);
    }

    [Fact]
    public void BusyCoresAreTheMachinesNonIdleTimeLessThisProcesss()
    {
        // 2 CPUs, 200 ticks elapsed: 100 idle, 100 busy of which this process used 40, so 60 ticks = 0.6 cores elsewhere.
        const string before = "cpu  1000 0 500 8000 100 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        const string after = "cpu  1080 0 520 8090 110 0 0 0 0 0\n";
        const string selfBefore = "123 (dotnet my app) S 1 2 3 4 5 6 7 8 9 10 300 200 0 0 20 0";
        const string selfAfter = "123 (dotnet my app) S 1 2 3 4 5 6 7 8 9 10 330 210 0 0 20 0";
        Assert.Equal(0.6, BeitThreads.BusyCores(before, after, selfBefore, selfAfter, 2)!.Value, 12);
        Assert.Equal(1, BeitThreads.Choose(2, 0.6)); // rounds to one busy core
        // This process alone busy: nothing left over for others.
        Assert.Equal(0, BeitThreads.BusyCores(before, after, selfBefore, "123 (x) S 1 2 3 4 5 6 7 8 9 10 380 220 0", 2)!.Value, 12);
        Assert.Null(BeitThreads.BusyCores("garbage", after, selfBefore, selfAfter, 2));
        Assert.Null(BeitThreads.BusyCores(before, before, selfBefore, selfAfter, 2)); // no time elapsed
        Assert.Null(BeitThreads.BusyCores(before, after, "no parenthesis", selfAfter, 2));
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void CancellingDuringTheSearchStopsWithinOneBatchAndReturnsNothing()
    {
        var data = BeitImageClassificationTrainerTests.PatternImages(64, 1);
        using var cts = new CancellationTokenSource();
        var phases = new List<string?>();
        int reportsAfterCancel = 0;
        var trainer = new BeitImageClassificationTrainer(new()
        {
            Config = BeitImageClassificationTrainerTests.TinyConfig(), MaxTrainingTime = TimeSpan.FromSeconds(150), BatchSize = 8, Seed = 3,
            ValidationFraction = 0.25,
            Progress = new Relay(p =>
            {
                if (cts.IsCancellationRequested) reportsAfterCancel++;
                phases.Add(p.Stage);
                Assert.InRange(p.OverallFraction!.Value, 0, 1);
                Assert.True(p.Remaining <= TimeSpan.FromSeconds(150));
                if (p.Stage!.StartsWith("trial 2", StringComparison.Ordinal)) cts.Cancel();
            }),
        });
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Train(data, null, cts.Token));
        Assert.Equal(0, reportsAfterCancel); // the next batch never started
        Assert.Contains(phases, p => p!.StartsWith("trial 2", StringComparison.Ordinal));
        Assert.StartsWith("trial 1: lr", phases[0]);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void DefaultsTrainColouredShapesWithinTheAutomaticBudgetAndReportEveryTrial()
    {
        // The colour bar's data (`-- --shapes`): 300 training and 150 test images.
        var train = SyntheticImages.ColouredShapes(300, 21);
        var test = SyntheticImages.ColouredShapes(150, 22);
        using var dir = new TempDir();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // No options at all, as `beit train <folder> --out model.zip`, but the threads as `beit train` picks them: two
        // libtorch threads on a 2-core machine with other work ran 12× slower.
        var report = BeitModelBuilder.Train(new Microsoft.ML.MLContext(seed: 0), train, test, dir.Combine("model.zip"), new BeitImageClassificationTrainer.Options
        {
            NumThreads = BeitThreads.ForTraining().Threads,
        });
        output.WriteLine($"{clock.Elapsed}, load average {File.ReadAllText("/proc/loadavg")}");
        output.WriteLine(report.ToString());
        var search = report.Training.Search!;
        // The automatic budget, 7 minutes: shorter ones proved a coin toss in CI, where the suite's other assemblies
        // share the cores. The shapes come out of the noise only after 100–200 epochs (one thread: 32–47 % after
        // 86–134 epochs in 165–240 s; two: 72 % after 138, 86 % after 371 in 7 minutes).
        Assert.Equal(TimeSpan.FromMinutes(7), search.Budget);
        Assert.NotEmpty(search.Trials);
        Assert.Single(search.Trials, t => t.Rung == search.Trials.Max(u => u.Rung) && t.Kept);
        // Six settings: the five of grey data and colour against the automatic luminance-only input.
        Assert.Equal(6, search.Trials.Count(t => t.Rung == 0));
        Assert.Single(search.Trials, t => t.Rung == 0 && t.Name.EndsWith(", colour", StringComparison.Ordinal));
        Assert.Equal(8, report.Training.Model.Config.PatchSize); // 64 px: an 8×8 grid
        Assert.True(report.TrainingTime < TimeSpan.FromSeconds(440), $"{report.TrainingTime}"); // the budget, plus at most a batch and a validation
        Assert.Equal((270, 30, 150), (report.TrainCount, report.ValidationCount, report.TestCount));
        // A sensible model: the shapes, not their colours (three classes, chance 33 %; one standard error on 150 images
        // is 4 points). With colour input the same run scored 44.7 %: the model memorised the training images' colours.
        Assert.True(report.Test.Accuracy >= 0.55, $"test accuracy {report.Test.Accuracy:P1}");
        using var json = JsonDocument.Parse(report.ToJson());
        Assert.Equal(search.Trials.Count, json.RootElement.GetProperty("search").GetProperty("trials").GetArrayLength());
        Assert.Equal(report.Test.Accuracy, json.RootElement.GetProperty("test").GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(30, json.RootElement.GetProperty("validationCount").GetInt32());
    }

    private sealed class Relay(Action<BeitTrainingProgress> report) : IProgress<BeitTrainingProgress>
    {
        public void Report(BeitTrainingProgress value) => report(value);
    }
}
