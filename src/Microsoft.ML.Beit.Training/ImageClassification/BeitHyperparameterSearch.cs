using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Beit.Training.ImageClassification;

/// <summary>One trial of the time-budgeted search: a setting trained from scratch for a slice of the budget.</summary>
/// <param name="Rung">Successive-halving rung (0: the first, shortest trials).</param>
/// <param name="Name">The setting, e.g. <c>lr 4e-3, no augmentation, 4×128</c>.</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="Augment">Random resized crop + flip on.</param>
/// <param name="RandomCropMinScale">Smallest crop when <paramref name="Augment"/> is on.</param>
/// <param name="Model">Model size, <c>layers×width</c> (or <c>checkpoint</c>).</param>
/// <param name="Budget">Time the trial was given.</param>
/// <param name="Used">Time it took, validation included.</param>
/// <param name="Epochs">Epochs it ran (the last one possibly cut by the budget).</param>
/// <param name="ValidationAccuracy">Accuracy on the validation split after its last step.</param>
/// <param name="Kept">Promoted to the next rung (or, in the last rung, the winner).</param>
public sealed record BeitSearchTrial(int Rung, string Name, double LearningRate, bool Augment, double RandomCropMinScale, string Model,
    TimeSpan Budget, TimeSpan Used, int Epochs, double ValidationAccuracy, bool Kept);

/// <summary>The time budget of a run and the search that ran inside it.</summary>
/// <param name="Budget">The whole training budget.</param>
/// <param name="BudgetReason">Given by the user, or how it was chosen from the data.</param>
/// <param name="Trials">Every trial, in the order run; empty when no search ran.</param>
/// <param name="Winner">The setting trained to the end.</param>
/// <param name="FinalBudget">The time left for the winner's final run.</param>
/// <param name="FinalEpochs">Epochs planned for the final run (from the winner's measured speed).</param>
/// <param name="Note">Why no search ran, when none did.</param>
public sealed record BeitSearchReport(TimeSpan Budget, string BudgetReason, IReadOnlyList<BeitSearchTrial> Trials, string Winner,
    TimeSpan FinalBudget, int FinalEpochs, string? Note = null)
{
    /// <summary>The final run started from the weights the winning trial ended with (a warm restart) rather than from scratch.</summary>
    public bool FinalStartsFromWinningTrial { get; init; }

    /// <summary>A text table of the budget and every trial.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Time budget {Budget:mm\\:ss} ({BudgetReason}).");
        if (Note is not null) sb.AppendLine("  " + Note);
        if (Trials.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"Search: successive halving, {Trials.Count(t => t.Rung == 0)} settings, {Trials.Max(t => t.Rung) + 1} rungs, on the validation split:");
            int width = Math.Max(45, Trials.Max(t => t.Name.Length));
            sb.AppendLine($"  rung  {"setting".PadRight(width)}  budget   used    epochs  val acc   result");
            foreach (var t in Trials)
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"  {t.Rung,4}  {t.Name.PadRight(width)}  {t.Budget:mm\\:ss}    {t.Used:mm\\:ss}   {t.Epochs,6}  {t.ValidationAccuracy,7:P1}   {(t.Kept ? "kept" : "pruned")}");
        }
        sb.Append(CultureInfo.InvariantCulture, $"Final run: {Winner}, {FinalEpochs} epochs planned in {FinalBudget:mm\\:ss}");
        sb.Append(FinalStartsFromWinningTrial ? ", starting from the winning trial's weights." : ".");
        return sb.ToString();
    }

    /// <summary>The report as indented JSON (times in seconds).</summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        budgetSeconds = Budget.TotalSeconds,
        budgetReason = BudgetReason,
        note = Note,
        winner = Winner,
        finalBudgetSeconds = FinalBudget.TotalSeconds,
        finalEpochs = FinalEpochs,
        finalStartsFromWinningTrial = FinalStartsFromWinningTrial,
        trials = Trials.Select(t => new
        {
            rung = t.Rung, setting = t.Name, learningRate = t.LearningRate, augment = t.Augment, randomCropMinScale = t.RandomCropMinScale,
            model = t.Model, budgetSeconds = t.Budget.TotalSeconds, usedSeconds = t.Used.TotalSeconds, epochs = t.Epochs,
            validationAccuracy = double.IsNaN(t.ValidationAccuracy) ? (double?)null : t.ValidationAccuracy, kept = t.Kept,
        }),
    }, s_json);

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };
}

/// <summary>
/// The time budget as the main knob, as in Model Builder: without <see cref="BeitTrainerOptions.MaxTrainingTime"/> (and
/// without explicit epochs) a budget is chosen from the data size; inside it, successive halving (Jamieson and
/// Talwalkar 2016; the inner loop of Hyperband, Li et al. 2018) over the few settings that matter — learning rate,
/// augmentation strength and model size, only those the user left unset — on the validation split, then the winner
/// trains to the end with the time left. With a checkpoint only the learning rate is searched (the paper's fine-tuning
/// recipe fixes the rest). Every trial restarts from scratch with its own warm-up + cosine schedule paced to its slice
/// of time, so a short trial is a complete short run rather than the start of a long one.
/// </summary>
internal static class BeitHyperparameterSearch
{
    // The share of the budget spent on trials; the final run gets the rest (and any time trials did not use). 15 %:
    // short trials cannot see what pays off late (augmentation, a larger model), so the search refines a measured prior
    // rather than replacing it, and most of the time goes to the run that counts (on 2,000 Fashion-MNIST images accuracy
    // still rose by about 1.5 points a minute at 7 minutes, so every minute of search costs the final model).
    private const double SearchShare = 0.15;
    // Successive halving keeps the best third and gives survivors three times the time (η = 3).
    private const int Eta = 3;
    // The search stops when it has used this multiple of its share (trials overran their slices).
    private const double OverrunFactor = 1.25;
    // Below this per-trial slice the trials say little (a few dozen steps); the run then trains the defaults only.
    private static readonly TimeSpan MinTrialBudget = TimeSpan.FromSeconds(2);
    // The reference point of the automatic budget: 2,000 images of 28×28 get 8 minutes (Model Builder's 10-minute
    // class of budget, less loading, saving and testing).
    private const double ReferenceWork = 2000.0 * 28 * 28;
    private static readonly TimeSpan ReferenceBudget = TimeSpan.FromMinutes(8), MinBudget = TimeSpan.FromMinutes(1), MaxBudget = TimeSpan.FromMinutes(13.5);
    // Epoch upper bound of a time-paced trial: the time slice, not the epochs, ends it.
    private const int TrialEpochCap = 10_000;

    /// <summary>A setting to try: factors and alternatives relative to the automatic defaults.</summary>
    internal sealed record Candidate(string Name, double LearningRate, bool Augment, double RandomCropMinScale, BeitConfig? Config, string Model, bool LuminanceOnly = false);

    /// <summary>
    /// The budget for a run with <paramref name="user"/>'s options on <paramref name="data"/>, and why; null when the run
    /// is bounded by explicit epochs instead (or resumes from a checkpoint directory, whose epochs must match).
    /// </summary>
    public static (TimeSpan Budget, string Reason)? Budget(BeitTrainerOptions user, BeitTrainingDefaults.DataStats data)
    {
        if (user.MaxTrainingTime is TimeSpan given) return (given, "given");
        if (user.ExplicitEpochs is not null || user.CheckpointDirectory is not null) return null;
        // √ of the pixels to look at: more data gets more time, but less than proportionally (epochs fall as data grows).
        double work = (double)data.Count * data.Height * data.Width;
        var budget = TimeSpan.FromSeconds(Math.Clamp(ReferenceBudget.TotalSeconds * Math.Sqrt(work / ReferenceWork), MinBudget.TotalSeconds, MaxBudget.TotalSeconds));
        budget = TimeSpan.FromSeconds(Math.Round(budget.TotalSeconds / 10) * 10);
        return (budget, string.Create(CultureInfo.InvariantCulture,
            $"chosen from the data: 8 min for 2,000 images of 28×28, ∝ √(images × pixels), within [1, 13.5] min; set --time / MaxTrainingTime to change it"));
    }

    /// <summary>
    /// The settings to compare: the automatic choice <paramref name="o"/> first, then one change at a time of each axis
    /// the user left unset: learning rate ×½ and ×2, the other augmentation strength (stronger crops where the default is
    /// mild, milder where it is strong; never none, which short trials favour and long runs regret), and a larger model.
    /// </summary>
    public static List<Candidate> Candidates(BeitTrainerOptions user, BeitImageClassificationTrainer.Options o, int side)
    {
        bool checkpoint = o.CheckpointFolder is not null;
        bool searchLr = user.ExplicitLearningRate is null;
        bool searchAug = !checkpoint && user.ExplicitAugment is null && user.ExplicitRandomCropMinScale is null;
        bool searchModel = !checkpoint && user.Config is null;
        var baseConfig = checkpoint ? null : o.Config ?? BeitTrainingDefaults.Config(side, o.DropPathRate);
        string baseModel = baseConfig is null ? "checkpoint" : Describe(baseConfig);
        double altMinScale = !o.Augment || o.RandomCropMinScale is >= 0.2 and < 0.5 ? 0.64 : 0.35;
        BeitConfig? altConfig = baseConfig is null ? null : Larger(baseConfig);

        var list = new List<Candidate> { Make(1, o.Augment, o.RandomCropMinScale, null, baseModel) };
        if (searchLr)
        {
            list.Add(Make(0.5, o.Augment, o.RandomCropMinScale, null, baseModel));
            list.Add(Make(2, o.Augment, o.RandomCropMinScale, null, baseModel));
        }
        if (searchAug) list.Add(Make(1, true, altMinScale, null, baseModel));
        if (searchModel && altConfig is not null) list.Add(Make(1, o.Augment, o.RandomCropMinScale, altConfig, Describe(altConfig)));
        // Luminance only (the automatic choice on few colour images) against colour, so colour that carries the class is kept.
        if (o.LuminanceOnly && !checkpoint && user is BeitImageClassificationTrainer.Options { ExplicitLuminanceOnly: null })
            list.Add(Make(1, o.Augment, o.RandomCropMinScale, null, baseModel, luminance: false));
        return list;

        Candidate Make(double lrFactor, bool augment, double minScale, BeitConfig? config, string model, bool? luminance = null)
        {
            double lr = o.LearningRate * lrFactor;
            bool luma = luminance ?? o.LuminanceOnly;
            string aug = augment ? string.Create(CultureInfo.InvariantCulture, $"crops ≥ {minScale:P0} + flips") : "no augmentation";
            return new Candidate(string.Create(CultureInfo.InvariantCulture, $"lr {lr:G2}, {aug}, {model}{(luma ? ", luminance" : o.LuminanceOnly ? ", colour" : "")}"),
                lr, augment, minScale, config, model, luma);
        }
    }

    // A wider and deeper variant (about 2.5× the compute): 1.5× width, two more layers.
    private static BeitConfig Larger(BeitConfig c)
    {
        var r = c.Clone();
        r.HiddenSize = c.HiddenSize * 3 / 2;
        r.NumAttentionHeads = c.NumAttentionHeads * 3 / 2 is int h && h > 0 && r.HiddenSize % h == 0 ? h : c.NumAttentionHeads;
        r.IntermediateSize = c.IntermediateSize * 3 / 2;
        r.NumHiddenLayers = c.NumHiddenLayers + 2;
        return r;
    }

    internal static string Describe(BeitConfig c) => string.Create(CultureInfo.InvariantCulture, $"{c.NumHiddenLayers}×{c.HiddenSize}");

    /// <summary>The options of one run of <paramref name="c"/> on top of the resolved options <paramref name="o"/>.</summary>
    private static BeitImageClassificationTrainer.Options With(BeitImageClassificationTrainer.Options o, Candidate c)
    {
        var r = (BeitImageClassificationTrainer.Options)o.CloneOptions();
        r.LearningRate = c.LearningRate;
        r.Augment = c.Augment;
        r.RandomCropMinScale = c.RandomCropMinScale;
        r.LuminanceOnly = c.LuminanceOnly;
        if (c.Config is not null) r.Config = c.Config.Clone();
        return r;
    }

    /// <summary>
    /// Runs the search (when there is something to search and time for it) and returns the options of the final run,
    /// with its epochs planned from the winner's measured speed and the remaining time as its hard budget.
    /// </summary>
    /// <param name="user">The options as the user set them.</param>
    /// <param name="o">The resolved options (automatic defaults applied).</param>
    /// <param name="data">The training data's statistics.</param>
    /// <param name="trainCount">Images per training epoch (the validation split excluded).</param>
    /// <param name="validationCount">Images the trials are validated on (0: none, so no search).</param>
    /// <param name="train">Trains a model with the given options and returns its history, and its final weights when asked (the model is disposed).</param>
    /// <param name="cancellationToken">Stops within one batch.</param>
    /// <param name="log">Receives each trial's result.</param>
    public static (BeitImageClassificationTrainer.Options Final, BeitSearchReport? Report) Run(BeitTrainerOptions user,
        BeitImageClassificationTrainer.Options o, BeitTrainingDefaults.DataStats data, int trainCount, int validationCount,
        Func<BeitImageClassificationTrainer.Options, bool, (IReadOnlyList<BeitEpochMetrics> History, Dictionary<string, TensorData>? Weights)> train,
        CancellationToken cancellationToken, IChannel? log)
    {
        if (Budget(user, data) is not var (budget, reason)) return (o, null);
        var clock = Stopwatch.StartNew();
        var progress = o.Progress;
        var candidates = Candidates(user, o, o.ImageSize ?? Math.Min(data.Height, data.Width));
        int units = 0;
        for (int n = candidates.Count, r = 1; n > 1; n = (n + Eta - 1) / Eta, r *= Eta) units += n * r;
        var slice = units == 0 ? TimeSpan.Zero : budget * SearchShare / units;
        string? note = user.CheckpointDirectory is not null ? "no search: a checkpoint directory resumes one run, so trials cannot share it"
            : candidates.Count < 2 ? "no search: every searched setting was given explicitly"
            : validationCount <= 0 ? "no search: no validation split to rank trials on (ValidationFraction 0 or too few images)"
            : slice < MinTrialBudget ? $"no search: the budget leaves under {MinTrialBudget.TotalSeconds:F0} s per trial"
            : null;
        log?.Info(MessageSensitivity.None, $"time budget {budget:mm\\:ss} ({reason})" + (note is null ? "" : "; " + note));

        var trials = new List<BeitSearchTrial>();
        var alive = candidates;
        var speed = new Dictionary<Candidate, double>(); // epochs per second, measured
        // The weights each trial of the deciding rung ended with: the final run starts from the winner's (a warm restart,
        // Loshchilov and Hutter 2017, SGDR), so the winner's trials are not thrown away.
        var weights = new Dictionary<Candidate, Dictionary<string, TensorData>>();
        if (note is null)
        {
            int rung = 0;
            for (var s = slice; alive.Count > 1 && note is null; s *= Eta, rung++)
            {
                bool deciding = (alive.Count + Eta - 1) / Eta == 1;
                var scores = new List<(Candidate C, double Accuracy, BeitSearchTrial Trial)>();
                foreach (var c in alive)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var t = With(o, c);
                    t.Epochs = TrialEpochCap;
                    t.MaxTrainingTime = s;
                    t.EpochCallback = null;
                    t.EarlyStoppingPatience = 0;
                    t.InitialWeights = null;
                    int index = trials.Count + scores.Count + 1;
                    var trialBudget = s;
                    t.Progress = progress is null ? null : new Relay(p => progress.Report(p with
                    {
                        Stage = $"trial {index}: {c.Name}",
                        OverallFraction = Math.Min(1, clock.Elapsed / budget),
                        Remaining = budget - clock.Elapsed > TimeSpan.Zero ? budget - clock.Elapsed : TimeSpan.Zero,
                    }));
                    var trialClock = Stopwatch.StartNew();
                    var (history, trialWeights) = train(t, deciding);
                    if (trialWeights is not null) weights[c] = trialWeights;
                    var used = trialClock.Elapsed;
                    // Training images per second (validation excluded): a trial's last epoch is usually cut short, so
                    // counting its epochs would overstate the speed.
                    if (history.Count > 0) speed[c] = history.Average(h => h.ImagesPerSecond);
                    double accuracy = history.Count == 0 ? double.NaN : history[^1].ValidationAccuracy;
                    scores.Add((c, accuracy, new BeitSearchTrial(rung, c.Name, c.LearningRate, c.Augment, c.RandomCropMinScale, c.Model, trialBudget, used, history.Count, accuracy, false)));
                    log?.Info(MessageSensitivity.None, string.Create(CultureInfo.InvariantCulture,
                        $"search rung {rung}, trial {index}: {c.Name}: validation accuracy {accuracy:P2} after {history.Count} epochs in {used:mm\\:ss}"));
                    // A run takes at least one step, so on a busy machine trials overrun their slices: stop searching
                    // rather than eat the final run's time, and keep the best setting tried so far.
                    if (clock.Elapsed > budget * SearchShare * OverrunFactor)
                    {
                        note = string.Create(CultureInfo.InvariantCulture,
                            $"search cut short after {trials.Count + scores.Count} trials: they took {clock.Elapsed.TotalSeconds:F0} s of a {(budget * SearchShare).TotalSeconds:F0} s search share (a busy or slow machine); the best setting tried so far trains to the end");
                        break;
                    }
                }
                // The automatic choice (the prior, candidate 0) keeps its place unless a challenger beats it by more than
                // the noise of a validation accuracy: Z standard errors of the difference of two accuracies on
                // validationCount images (a two-proportion z-test). On 100 validation images that is about 13 points, on
                // 1,000 about 4. Ties keep the earlier candidate; NaN ranks last.
                int keep = note is null ? (alive.Count + Eta - 1) / Eta : 1;
                double Score((Candidate C, double Accuracy, BeitSearchTrial Trial) x) =>
                    double.IsNaN(x.Accuracy) ? double.NegativeInfinity : x.Accuracy + (x.C == candidates[0] ? NoiseMargin(x.Accuracy, validationCount) : 0);
                var ranked = scores.Select((x, i) => (x, i)).OrderByDescending(p => Score(p.x)).ThenBy(p => p.i).ToList();
                var kept = ranked.Take(keep).Select(p => p.x.C).ToHashSet();
                trials.AddRange(scores.Select(x => x.Trial with { Kept = kept.Contains(x.C) }));
                alive = alive.Where(kept.Contains).ToList();
                foreach (var loser in weights.Keys.Where(k => !kept.Contains(k)).ToList()) weights.Remove(loser);
                if (note is not null) break;
            }
        }

        var winner = alive[0];
        var final = With(o, winner);
        final.InitialWeights = weights.GetValueOrDefault(winner);
        var remaining = budget - clock.Elapsed;
        // Spent (a tiny given budget, or overrunning trials): the final run still takes its one step.
        if (remaining <= TimeSpan.Zero) remaining = TimeSpan.FromTicks(1);
        // Epochs from the winner's measured training speed, planned 20 % over: the remaining time is a hard limit that
        // also paces the schedule, so an overestimate still anneals by the deadline, while an underestimate (the load
        // dropped since the trials) would end early and leave time unused.
        if (user.ExplicitEpochs is null && speed.TryGetValue(winner, out double imagesPerSecond) && imagesPerSecond > 0)
            final.Epochs = (int)Math.Clamp(Math.Floor(1.2 * remaining.TotalSeconds * imagesPerSecond / Math.Max(1, trainCount)), 1, TrialEpochCap);
        final.MaxTrainingTime = remaining;
        var searchElapsed = clock.Elapsed;
        if (progress is not null)
        {
            final.Progress = new Relay(p => progress.Report(p with
            {
                Stage = trials.Count > 0 ? "final run" : null,
                OverallFraction = Math.Min(1, Math.Max((searchElapsed + (budget - searchElapsed) * ((p.Epoch - 1 + (double)p.Batch / p.Batches) / p.Epochs)) / budget,
                    clock.Elapsed / budget)),
            }));
        }
        var report = new BeitSearchReport(budget, reason, trials, winner.Name, remaining,
            final.Epochs, note) { FinalStartsFromWinningTrial = final.InitialWeights is not null };
        log?.Info(MessageSensitivity.None, $"final run: {winner.Name}, {final.Epochs} epochs planned in {remaining:mm\\:ss}"
            + (final.InitialWeights is not null ? ", from the winning trial's weights" : ""));
        return (final, report);
    }

    // Z standard errors of the difference between two accuracies near p on n images each: Z·√(2p(1−p)/n), with p kept
    // away from 0 and 1 so a trial at 0 % or 100 % still has a margin.
    internal static double NoiseMargin(double p, int n)
    {
        const double Z = 2;
        p = Math.Clamp(p, 0.05, 0.95);
        return n <= 0 ? 0 : Z * Math.Sqrt(2 * p * (1 - p) / n);
    }

    private sealed class Relay(Action<BeitTrainingProgress> report) : IProgress<BeitTrainingProgress>
    {
        public void Report(BeitTrainingProgress value) => report(value);
    }
}
