using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Optimization;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>What a <see cref="BeitTrainingProgress"/> report is about.</summary>
public enum BeitTrainingPhase
{
    /// <summary>Fitting the k-means visual tokenizer before pre-training (<see cref="BeitTrainingProgress.Step"/> counts iterations).</summary>
    Tokenizer,
    /// <summary>An optimizer step finished (<see cref="BeitTrainingProgress.Step"/> counts steps of the whole run).</summary>
    Training,
    /// <summary>An epoch finished and was validated (<see cref="BeitTrainingProgress.Metric"/> is the validation score, NaN without validation).</summary>
    EpochEnd,
}

/// <summary>
/// Progress of a training run, the one record every BEiT trainer reports through <see cref="BeitTrainerOptions.Progress"/>:
/// after every optimizer step, at the end of every epoch, and for each k-means iteration of pre-training's tokenizer.
/// </summary>
/// <param name="Phase">What this report is about.</param>
/// <param name="Epoch">1-based epoch (0 while fitting the tokenizer).</param>
/// <param name="Epochs">Epochs planned.</param>
/// <param name="Batch">1-based batch within the epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="Step">Steps done in this phase (optimizer steps of the run, or tokenizer iterations).</param>
/// <param name="TotalSteps">Steps planned in this phase.</param>
/// <param name="Loss">Mean training loss so far in this epoch.</param>
/// <param name="Metric">Validation score at <see cref="BeitTrainingPhase.EpochEnd"/> (accuracy, mean IoU or masked-token accuracy); NaN otherwise.</param>
/// <param name="LearningRate">Base learning rate of the last step.</param>
/// <param name="ImagesPerSecond">Training throughput so far in this epoch.</param>
/// <param name="Elapsed">Time since the run started (resumed runs included).</param>
/// <param name="Remaining">Estimated time left for the whole run.</param>
public sealed record BeitTrainingProgress(BeitTrainingPhase Phase, int Epoch, int Epochs, int Batch, int Batches, long Step, long TotalSteps,
    double Loss, double Metric, double LearningRate, double ImagesPerSecond, TimeSpan Elapsed, TimeSpan Remaining)
{
    /// <summary>A one-line summary, as the trainers write it to the ML.NET log.</summary>
    public string? Message { get; init; }

    /// <summary>What runs now when the time-budgeted search runs (e.g. <c>trial 3: lr 4e-3, …</c>, <c>final run</c>); null otherwise.</summary>
    public string? Stage { get; init; }

    /// <summary>Fraction of the whole run done (search and final run together) when a search runs; null: count epochs.</summary>
    public double? OverallFraction { get; init; }
}

/// <summary>Metrics at the end of an epoch; validation values are NaN without a validation set or when they do not apply.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainLoss">Mean training loss of the epoch.</param>
/// <param name="ValidationLoss">Validation loss.</param>
/// <param name="ValidationAccuracy">Validation accuracy (pixel accuracy for segmentation, masked-token accuracy for pre-training).</param>
/// <param name="ValidationMacroF1">Validation macro-F1 (classification).</param>
/// <param name="ValidationMeanIoU">Validation mean IoU (segmentation).</param>
/// <param name="Elapsed">Time since the run started (resumed runs included).</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch.</param>
public sealed record BeitEpochMetrics(int Epoch, double TrainLoss, double ValidationLoss, double ValidationAccuracy, double ValidationMacroF1,
    double ValidationMeanIoU, TimeSpan Elapsed, double ImagesPerSecond);

/// <summary>Validation results of one epoch; <see cref="Score"/> picks the best epoch (higher is better).</summary>
internal readonly record struct ValidationResult(double Loss, double Accuracy, double MacroF1, double MeanIoU, double Score);

/// <summary>
/// The epoch/batch loop shared by the trainers: warm-up + cosine schedule, layer-wise AdamW, per-batch seeds derived
/// from (seed, epoch, batch) so a resumed run draws exactly what an uninterrupted one draws, checkpoints written
/// atomically after every epoch, early stopping on a validation score, a time budget that also paces the schedule,
/// progress and cancellation.
/// </summary>
internal static class TrainingLoop
{
    private const string TrainerStateFile = "trainer_state.json";
    private const string OptimizerStateFile = "optimizer.safetensors";

    /// <summary>
    /// A task's loss on the examples at <c>indices</c> (the task adapter: classification, segmentation or masked image
    /// modeling). It runs inside the step's dispose scope after <c>torch.random.manual_seed(seed)</c>; <c>rng</c> is
    /// seeded with the same value, so a resumed run draws exactly what an uninterrupted one draws.
    /// </summary>
    public delegate Tensor TaskLoss(ArraySegment<int> indices, int seed, Random rng);

    /// <summary>
    /// Runs the loop and returns the history and the best epoch; the model ends in eval mode with the kept weights.
    /// An ML.NET channel, when given, receives the plan, progress about every tenth of an epoch and each epoch's metrics.
    /// </summary>
    public static (List<BeitEpochMetrics> History, int BestEpoch) Run(BeitTrainerOptions o, BeitPreTrainedModel model, int trainCount,
        TaskLoss taskLoss, Func<ValidationResult>? validate, CancellationToken cancellationToken, IChannel? log = null)
    {
        var settings = LayerwiseParameterGroups.Build(model.named_parameters().Select(p => (p.name, p.parameter)),
            model.Config.NumHiddenLayers, o.LayerDecay, o.WeightDecay);
        if (!o.ExemptFromWeightDecay) settings = settings.Select(s => s with { WeightDecay = o.WeightDecay }).ToList();
        using var optimizer = new BeitAdamW(settings, o.Beta1, o.Beta2, o.AdamEpsilon);

        int batchesPerEpoch = (trainCount + o.BatchSize - 1) / o.BatchSize;
        if (o.DropLastBatch && trainCount >= o.BatchSize) batchesPerEpoch = trainCount / o.BatchSize;
        long totalSteps = (long)batchesPerEpoch * o.Epochs;
        var schedule = new LearningRateSchedule(o.LearningRate, o.MinLearningRate, totalSteps, (long)Math.Round(o.WarmupEpochs * batchesPerEpoch));

        var history = new List<BeitEpochMetrics>();
        bool keepBest = validate is not null && o.EarlyStoppingPatience > 0;
        int startEpoch = 0, bestEpoch = 0, badEpochs = 0;
        double bestScore = double.NegativeInfinity;
        Dictionary<string, TensorData>? bestWeights = null;
        // An unwritable checkpoint folder fails now, not after the first epoch.
        if (o.CheckpointDirectory is string dir) AtomicFile.CheckWritable(Path.Combine(dir, "last"));
        if (o.CheckpointDirectory is string ckptDir && File.Exists(Path.Combine(ckptDir, "last", TrainerStateFile)))
        {
            var state = Resume(Path.Combine(ckptDir, "last"), model, optimizer);
            (startEpoch, bestEpoch, bestScore, badEpochs) = (state.EpochsDone, state.BestEpoch, state.BestScore, state.BadEpochs);
            history.AddRange(state.History);
            string best = Path.Combine(ckptDir, "best");
            if (keepBest && Directory.Exists(best)) bestWeights = BeitCheckpoint.ReadTensors(best);
        }

        if (BeitTrainingDefaults.Bf16Warning(o, CpuFeatures.Current) is string bf16Warning)
            log?.Warning(MessageSensitivity.None, bf16Warning);
        log?.Info(MessageSensitivity.None, $"{trainCount:N0} training images, {batchesPerEpoch} batches of {o.BatchSize} per epoch, {o.Epochs} epochs, peak learning rate {o.LearningRate:G3}"
            + (o.MaxTrainingTime is TimeSpan max ? $", time budget {max:hh\\:mm\\:ss}" : "") + (startEpoch > 0 ? $"; resuming after epoch {startEpoch}" : ""));
        int logEvery = Math.Max(1, batchesPerEpoch / 10);
        var clock = Stopwatch.StartNew();
        var previous = history.Count > 0 ? history[^1].Elapsed : TimeSpan.Zero;
        bool outOfTime = false;
        long stepsTaken = 0, lastStep = 0;
        double lastLr = double.NaN;
        for (int epoch = startEpoch; epoch < o.Epochs; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            double lossSum = 0;
            int seen = 0;
            model.train();
            var order = Enumerable.Range(0, trainCount).ToArray();
            new Random(Mix(o.Seed, epoch, -1)).Shuffle(order);
            for (int b = 0; b < batchesPerEpoch; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int from = b * o.BatchSize, count = Math.Min(trainCount, from + o.BatchSize) - from;
                long globalStep = (long)epoch * batchesPerEpoch + b;
                // With a time budget the schedule advances by steps or by time, whichever is further, so the learning
                // rate has annealed when the budget runs out instead of being cut off high.
                double position = o.MaxTrainingTime is TimeSpan budget
                    ? Math.Max(globalStep, (previous + clock.Elapsed) / budget * totalSteps)
                    : globalStep;
                if (position >= totalSteps && stepsTaken > 0) // a run takes at least one step
                {
                    outOfTime = true;
                    break;
                }
                double lr = schedule.At(Math.Min(totalSteps - 1, (long)position));
                stepsTaken++;
                (lastStep, lastLr) = (globalStep + 1, lr);
                double loss;
                using (o.Bf16Autocast ? BeitAutocast.Enable(ScalarType.BFloat16) : null)
                {
                    loss = Step(o, optimizer, taskLoss, new ArraySegment<int>(order, from, count), Mix(o.Seed, epoch, b), lr);
                }
                if (double.IsNaN(loss) || double.IsInfinity(loss))
                    throw new InvalidOperationException($"Training diverged at epoch {epoch + 1}, batch {b + 1} (loss {loss}); lower the learning rate.");
                lossSum += loss * count;
                seen += count;
                if (o.Progress is not null)
                {
                    double ips = seen / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
                    long stepsLeft = totalSteps - globalStep - 1;
                    var remaining = TimeSpan.FromSeconds(stepsLeft * epochClock.Elapsed.TotalSeconds / (b + 1));
                    if (o.MaxTrainingTime is TimeSpan limit)
                        remaining = TimeSpan.FromTicks(Math.Clamp((limit - previous - clock.Elapsed).Ticks, 0, remaining.Ticks));
                    o.Progress.Report(new BeitTrainingProgress(BeitTrainingPhase.Training, epoch + 1, o.Epochs, b + 1, batchesPerEpoch, globalStep + 1, totalSteps,
                        lossSum / seen, double.NaN, lr, ips, previous + clock.Elapsed, remaining));
                }
                if (log is not null && (b + 1) % logEvery == 0 && b + 1 < batchesPerEpoch)
                    log.Trace(MessageSensitivity.None, $"epoch {epoch + 1}/{o.Epochs}, batch {b + 1}/{batchesPerEpoch}: loss {lossSum / seen:F4}, lr {lr:G3}, "
                        + $"{seen / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds):F0} img/s");
            }
            if (seen == 0) break; // the budget ran out before this epoch's first step
            double trainIps = seen / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
            var v = validate?.Invoke() ?? new ValidationResult(double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
            var metrics = new BeitEpochMetrics(epoch + 1, lossSum / Math.Max(1, seen), v.Loss, v.Accuracy, v.MacroF1, v.MeanIoU, previous + clock.Elapsed, trainIps);
            history.Add(metrics);
            o.EpochCallback?.Invoke(metrics);
            string summary = Describe(metrics);
            log?.Info(MessageSensitivity.None, summary);
            o.Progress?.Report(new BeitTrainingProgress(BeitTrainingPhase.EpochEnd, epoch + 1, o.Epochs, (int)(lastStep - (long)epoch * batchesPerEpoch), batchesPerEpoch,
                lastStep, totalSteps, metrics.TrainLoss, v.Score, lastLr, trainIps, metrics.Elapsed,
                TimeSpan.FromSeconds((totalSteps - lastStep) * epochClock.Elapsed.TotalSeconds / Math.Max(1, lastStep - (long)epoch * batchesPerEpoch))) { Message = summary });

            bool improved = validate is null || v.Score > bestScore;
            if (improved)
            {
                bestScore = validate is null ? epoch : v.Score;
                bestEpoch = epoch + 1;
                badEpochs = 0;
                if (keepBest) bestWeights = model.ToTensorData();
            }
            else
            {
                badEpochs++;
            }
            bool stop = keepBest && badEpochs >= o.EarlyStoppingPatience;
            if (o.CheckpointDirectory is not null)
                Save(o.CheckpointDirectory, model, optimizer, new TrainerState(epoch + 1, bestEpoch, bestScore, badEpochs, history),
                    validate is not null && improved ? bestWeights ?? model.ToTensorData() : null);
            if (stop || outOfTime) break;
        }

        if (keepBest && bestWeights is not null && bestEpoch != history[^1].Epoch) model.LoadWeights(bestWeights, "best epoch");
        model.eval();
        // The epoch whose weights the model holds: the best one when early stopping kept it, else the last.
        return (history, keepBest && bestEpoch > 0 ? bestEpoch : history[^1].Epoch);
    }

    /// <summary>
    /// The one optimizer step of every trainer: seeds, the task's loss, zero-grad, backward, global-norm clipping,
    /// AdamW at the scheduled rate. Returns the batch loss.
    /// </summary>
    internal static double Step(BeitTrainerOptions o, BeitAdamW optimizer, TaskLoss taskLoss, ArraySegment<int> indices, int seed, double lr)
    {
        using var window = TorchCallWindow.Open();
        using var scope = NewDisposeScope();
        TorchSharp.torch.random.manual_seed(seed);
        var loss = taskLoss(indices, seed, new Random(seed));
        optimizer.ZeroGrad();
        loss.backward();
        if (o.GradientClipNorm > 0) nn.utils.clip_grad_norm_(optimizer.Settings.Select(s => s.Parameter), o.GradientClipNorm);
        optimizer.Step(lr);
        return loss.item<float>();
    }

    private static string Describe(BeitEpochMetrics m)
    {
        var text = new System.Text.StringBuilder($"epoch {m.Epoch}: train loss {m.TrainLoss:F4}");
        if (!double.IsNaN(m.ValidationLoss)) text.Append($", validation loss {m.ValidationLoss:F4}");
        if (!double.IsNaN(m.ValidationAccuracy)) text.Append($", accuracy {m.ValidationAccuracy:P2}");
        if (!double.IsNaN(m.ValidationMacroF1)) text.Append($", macro-F1 {m.ValidationMacroF1:F4}");
        if (!double.IsNaN(m.ValidationMeanIoU)) text.Append($", mean IoU {m.ValidationMeanIoU:F4}");
        return text.Append($" ({m.ImagesPerSecond:F0} img/s, {m.Elapsed:hh\\:mm\\:ss})").ToString();
    }

    /// <summary>
    /// Runs <paramref name="batch"/> over consecutive index ranges of <paramref name="count"/> examples in eval mode
    /// without gradients, one dispose scope per batch, and restores the model's mode afterwards.
    /// </summary>
    internal static void ForEachEvalBatch(BeitPreTrainedModel model, int count, int batchSize, Action<int, int[]> batch)
    {
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            for (int from = 0; from < count; from += batchSize)
            {
                using var window = TorchCallWindow.Open();
                using var scope = NewDisposeScope();
                batch(from, Enumerable.Range(from, Math.Min(batchSize, count - from)).ToArray());
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    // A fixed mix (HashCode is randomised per process, which would break resuming in a new process).
    internal static int Mix(int seed, int epoch, int batch)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)(epoch + 1) * 0xBF58476D1CE4E5B9UL + (ulong)(batch + 2) * 0x94D049BB133111EBUL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7fffffff);
    }

    private sealed record TrainerState(int EpochsDone, int BestEpoch, double BestScore, int BadEpochs, List<BeitEpochMetrics> History);

    private static void Save(string dir, BeitPreTrainedModel model, BeitAdamW optimizer, TrainerState state, Dictionary<string, TensorData>? best)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteFolder(Path.Combine(dir, "last"), tmp =>
        {
            model.SavePretrained(tmp);
            SafeTensors.Write(Path.Combine(tmp, OptimizerStateFile), optimizer.StateDict());
            File.WriteAllText(Path.Combine(tmp, TrainerStateFile), JsonSerializer.Serialize(state, s_json));
        });
        if (best is not null)
            AtomicFile.WriteFolder(Path.Combine(dir, "best"), tmp => BeitCheckpoint.Save(tmp, model.Config, best));
    }

    private static readonly JsonSerializerOptions s_json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private static TrainerState Resume(string last, BeitPreTrainedModel model, BeitAdamW optimizer)
    {
        model.LoadWeights(BeitCheckpoint.ReadTensors(last), last);
        optimizer.LoadStateDict(SafeTensors.Read(Path.Combine(last, OptimizerStateFile)));
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(last, TrainerStateFile)), s_json)
            ?? throw new InvalidDataException($"'{last}/{TrainerStateFile}' is empty.");
    }
}
