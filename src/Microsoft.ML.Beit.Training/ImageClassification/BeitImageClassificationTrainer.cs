using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Evaluation;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.ImageClassification;

/// <summary>Progress of a training run, reported every batch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Epochs planned.</param>
/// <param name="Batch">1-based batch within the epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="Loss">Mean training loss so far in this epoch.</param>
/// <param name="LearningRate">Base learning rate of the last step.</param>
/// <param name="ImagesPerSecond">Training throughput so far in this epoch.</param>
/// <param name="Remaining">Estimated time left for the whole run.</param>
public sealed record BeitTrainingProgress(int Epoch, int Epochs, int Batch, int Batches, double Loss, double LearningRate, double ImagesPerSecond, TimeSpan Remaining);

/// <summary>Metrics at the end of an epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainLoss">Mean training loss of the epoch.</param>
/// <param name="ValidationLoss">Cross-entropy on the validation set (NaN without one).</param>
/// <param name="ValidationAccuracy">Accuracy on the validation set (NaN without one).</param>
/// <param name="ValidationMacroF1">Macro-F1 on the validation set (NaN without one).</param>
/// <param name="Elapsed">Time since the run started.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch.</param>
public sealed record BeitEpochMetrics(int Epoch, double TrainLoss, double ValidationLoss, double ValidationAccuracy, double ValidationMacroF1, TimeSpan Elapsed, double ImagesPerSecond);

/// <summary>
/// Fine-tunes (or trains from scratch) <see cref="BeitForImageClassification"/> with the BEiT paper's recipe:
/// layer-wise learning-rate decay, AdamW without decay on biases/norms/tables/tokens, warm-up + cosine schedule,
/// drop path, label smoothing, random resized crop + flip and optional mixup/cutmix, early stopping on a
/// validation set, checkpoints with exact resume, and cancellation within one batch.
/// </summary>
public sealed partial class BeitImageClassificationTrainer
{
    private const string TrainerStateFile = "trainer_state.json";
    private const string OptimizerStateFile = "optimizer.safetensors";

    private readonly Options _options;

    /// <summary>Creates a trainer with <paramref name="options"/> (defaults when null).</summary>
    public BeitImageClassificationTrainer(Options? options = null)
    {
        _options = options ?? new Options();
        _options.Validate();
    }

    /// <summary>The options of this trainer.</summary>
    public Options TrainerOptions => _options;

    /// <summary>The result of <see cref="Train"/>: the model (best validation epoch when early stopping ran) and its history.</summary>
    /// <param name="Model">The trained model, in eval mode.</param>
    /// <param name="History">Metrics of every epoch run (resumed epochs included).</param>
    /// <param name="BestEpoch">Epoch whose weights <paramref name="Model"/> holds.</param>
    public sealed record Result(BeitForImageClassification Model, IReadOnlyList<BeitEpochMetrics> History, int BestEpoch);

    /// <summary>
    /// Trains on <paramref name="train"/>, validating on <paramref name="validation"/> (or a stratified
    /// <see cref="Options.ValidationFraction"/> of <paramref name="train"/> when null and the fraction is positive).
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled; checkpoints already written stay valid, nothing else is written.</exception>
    public Result Train(BeitTrainingImages train, BeitTrainingImages? validation = null, CancellationToken cancellationToken = default)
    {
        var o = _options;
        if (validation is null && o.ValidationFraction > 0 && train.Count >= 2 * train.ClassNames.Count)
            (train, validation) = train.Split(o.ValidationFraction, o.Seed);
        if (train.Count == 0) throw new ArgumentException("No training images.");
        if (o.NumThreads is int threads) torch.set_num_threads(threads);
        var device = new Device(o.Device);

        var model = CreateModel(train);
        model.to(device);
        var config = model.Config;
        int numLayers = config.NumHiddenLayers;
        var settings = LayerwiseParameterGroups.Build(model.named_parameters().Select(p => (p.name, p.parameter)), numLayers,
            o.LayerDecay, o.WeightDecay);
        if (!o.ExemptFromWeightDecay) settings = settings.Select(s => s with { WeightDecay = o.WeightDecay }).ToList();
        using var optimizer = new BeitAdamW(settings, o.Beta1, o.Beta2, o.AdamEpsilon);

        int batchesPerEpoch = (train.Count + o.BatchSize - 1) / o.BatchSize;
        if (o.DropLastBatch && train.Count >= o.BatchSize) batchesPerEpoch = train.Count / o.BatchSize;
        long totalSteps = (long)batchesPerEpoch * o.Epochs;
        var schedule = new LearningRateSchedule(o.LearningRate, o.MinLearningRate, totalSteps, (long)Math.Round(o.WarmupEpochs * batchesPerEpoch));

        var history = new List<BeitEpochMetrics>();
        bool keepBest = validation is not null && o.EarlyStoppingPatience > 0;
        int startEpoch = 0, bestEpoch = 0, badEpochs = 0;
        double bestScore = double.NegativeInfinity;
        Dictionary<string, TensorData>? bestWeights = null;
        if (o.CheckpointDirectory is string ckptDir && File.Exists(Path.Combine(ckptDir, "last", TrainerStateFile)))
        {
            var state = ResumeFrom(Path.Combine(ckptDir, "last"), model, optimizer);
            (startEpoch, bestEpoch, bestScore, badEpochs) = (state.EpochsDone, state.BestEpoch, state.BestScore, state.BadEpochs);
            history.AddRange(state.History);
            string best = Path.Combine(ckptDir, "best");
            if (keepBest && Directory.Exists(best)) bestWeights = BeitCheckpoint.ReadTensors(best);
        }

        var clock = Stopwatch.StartNew();
        var previous = history.Count > 0 ? history[^1].Elapsed : TimeSpan.Zero;
        for (int epoch = startEpoch; epoch < o.Epochs; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            double lossSum = 0;
            int seen = 0;
            model.train();
            var order = Enumerable.Range(0, train.Count).ToArray();
            new Random(Mix(o.Seed, epoch, -1)).Shuffle(order);
            for (int b = 0; b < batchesPerEpoch; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int from = b * o.BatchSize, to = Math.Min(train.Count, from + o.BatchSize);
                long step = (long)epoch * batchesPerEpoch + b;
                double lr = schedule.At(step);
                double loss = TrainStep(model, optimizer, train, order.AsSpan(from, to - from), lr, Mix(o.Seed, epoch, b), device);
                lossSum += loss * (to - from);
                seen += to - from;
                if (o.Progress is not null)
                {
                    double ips = seen / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
                    long stepsLeft = totalSteps - step - 1;
                    var remaining = TimeSpan.FromSeconds(stepsLeft * epochClock.Elapsed.TotalSeconds / (b + 1));
                    o.Progress.Report(new BeitTrainingProgress(epoch + 1, o.Epochs, b + 1, batchesPerEpoch, lossSum / seen, lr, ips, remaining));
                }
            }
            double trainIps = seen / Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
            var (vLoss, vAcc, vF1) = validation is null ? (double.NaN, double.NaN, double.NaN) : Evaluate(model, validation, o.BatchSize, device);
            var metrics = new BeitEpochMetrics(epoch + 1, lossSum / Math.Max(1, seen), vLoss, vAcc, vF1, previous + clock.Elapsed, trainIps);
            history.Add(metrics);
            o.EpochCallback?.Invoke(metrics);

            bool improved = validation is null || vAcc > bestScore;
            if (improved)
            {
                bestScore = validation is null ? epoch : vAcc;
                bestEpoch = epoch + 1;
                badEpochs = 0;
                if (keepBest) bestWeights = model.ToTensorData();
            }
            else
            {
                badEpochs++;
            }
            bool stop = keepBest && badEpochs >= o.EarlyStoppingPatience;
            bool outOfTime = o.MaxTrainingTime is TimeSpan budget && previous + clock.Elapsed >= budget;
            if (o.CheckpointDirectory is not null)
                SaveCheckpoint(o.CheckpointDirectory, model, optimizer, new TrainerState(epoch + 1, bestEpoch, bestScore, badEpochs, history), validation is not null && improved ? bestWeights ?? model.ToTensorData() : null);
            if (stop || outOfTime) break;
        }

        if (keepBest && bestWeights is not null && bestEpoch != history[^1].Epoch) model.LoadWeights(bestWeights, "best epoch");
        model.eval();
        return new Result(model, history, bestEpoch == 0 ? history.Count : bestEpoch);
    }

    // One optimizer step; returns the batch loss.
    private double TrainStep(BeitForImageClassification model, BeitAdamW optimizer, BeitTrainingImages data, ReadOnlySpan<int> indices,
        double lr, int seed, Device device)
    {
        var o = _options;
        using var scope = NewDisposeScope();
        // Seeds derived from (seed, epoch, batch) make a resumed run draw exactly what an uninterrupted run draws.
        torch.random.manual_seed(seed);
        var rng = new Random(seed);
        var (x, y) = data.Batch(indices, device);
        int size = model.Config.ImageSize;
        if (o.Augment)
            x = BatchAugmentation.RandomResizedCropAndFlip(x, null, size, size, new BatchAugmentation.CropSettings(o.RandomCropMinScale), o.HorizontalFlip ? 0.5 : 0, rng).Images;
        else if (x.shape[2] != size || x.shape[3] != size)
            x = nn.functional.interpolate(x, [size, size], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);

        using var autocast = o.Bf16Autocast ? BeitAutocast.Enable(ScalarType.BFloat16) : null;
        Tensor loss;
        bool soft = o.LabelSmoothing > 0 || o.MixupAlpha > 0 || o.CutmixAlpha > 0;
        if (soft)
        {
            var targets = BatchAugmentation.SoftTargets(y, data.ClassNames.Count, o.LabelSmoothing);
            if (o.MixupAlpha > 0 || o.CutmixAlpha > 0)
                (x, targets) = BatchAugmentation.MixupOrCutmix(x, targets, o.MixupAlpha, o.CutmixAlpha, 0.5, rng);
            var logits = model.forward(x).Logits;
            loss = -(targets * nn.functional.log_softmax(logits, 1)).sum(1).mean();
        }
        else
        {
            loss = model.forward(x, y).Loss!;
        }
        optimizer.ZeroGrad();
        loss.backward();
        if (o.GradientClipNorm > 0)
            nn.utils.clip_grad_norm_(optimizer.Settings.Select(s => s.Parameter), o.GradientClipNorm);
        optimizer.Step(lr);
        return loss.item<float>();
    }

    /// <summary>Loss, accuracy and macro-F1 of <paramref name="model"/> on <paramref name="data"/>, in eval mode.</summary>
    public static (double Loss, double Accuracy, double MacroF1) Evaluate(BeitForImageClassification model, BeitTrainingImages data, int batchSize, Device? device = null)
    {
        var cm = Predict(model, data, batchSize, device, out double loss);
        return (loss, cm.Accuracy, cm.MacroF1);
    }

    /// <summary>The confusion matrix of <paramref name="model"/> on <paramref name="data"/>, with the mean cross-entropy.</summary>
    public static ConfusionMatrixMetrics Predict(BeitForImageClassification model, BeitTrainingImages data, int batchSize, Device? device, out double meanLoss)
    {
        bool wasTraining = model.training;
        model.eval();
        var cm = new ConfusionMatrixMetrics(data.ClassNames);
        double lossSum = 0;
        int size = model.Config.ImageSize;
        var all = Enumerable.Range(0, data.Count).ToArray();
        using (no_grad())
        {
            for (int from = 0; from < data.Count; from += batchSize)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(batchSize, data.Count - from);
                var (x, y) = data.Batch(all.AsSpan(from, n), device);
                if (x.shape[2] != size || x.shape[3] != size)
                    x = nn.functional.interpolate(x, [size, size], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
                var logits = model.forward(x).Logits;
                lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).item<float>();
                var pred = logits.argmax(1).cpu().data<long>().ToArray();
                var truth = y.cpu().data<long>().ToArray();
                for (int i = 0; i < n; i++) cm.Add((int)truth[i], (int)pred[i]);
            }
        }
        if (wasTraining) model.train();
        meanLoss = lossSum / Math.Max(1, data.Count);
        return cm;
    }

    private BeitForImageClassification CreateModel(BeitTrainingImages train)
    {
        var o = _options;
        torch.random.manual_seed(o.Seed);
        BeitConfig config;
        Dictionary<string, TensorData>? tensors = null;
        if (o.CheckpointFolder is string folder)
        {
            config = BeitConfig.Load(folder);
            tensors = BeitCheckpoint.ReadTensors(folder);
            if (config.UseSharedRelativePositionBias)
                (config, tensors) = ExpandSharedRelativePositionBias(config, tensors);
        }
        else
        {
            config = o.Config?.Clone() ?? DefaultConfig(train, o);
        }
        bool sameHead = config.NumLabels == train.ClassNames.Count && tensors is not null && tensors.ContainsKey("classifier.weight")
            && Enumerable.Range(0, config.NumLabels).All(i => config.LabelName(i) == train.ClassNames[i]);
        config.Id2Label = new SortedDictionary<int, string>(Enumerable.Range(0, train.ClassNames.Count).ToDictionary(i => i, i => train.ClassNames[i]));
        config.ProblemType = "single_label_classification";
        config.DropPathRate = o.DropPathRate;
        config.Architectures = ["BeitForImageClassification"];
        config.UseMaskToken = false;
        var model = new BeitForImageClassification(config);
        if (tensors is not null)
        {
            var load = tensors.Where(kv => !kv.Key.StartsWith("lm_head.", StringComparison.Ordinal) && kv.Key != "beit.embeddings.mask_token"
                && (sameHead || !kv.Key.StartsWith("classifier.", StringComparison.Ordinal)))
                .ToDictionary(kv => kv.Key, kv => kv.Value);
            model.LoadWeights(load, o.CheckpointFolder!, strict: false);
            var missing = model.LoadReport!.Missing.Where(n => !n.StartsWith("classifier.", StringComparison.Ordinal) && !n.StartsWith("beit.pooler.", StringComparison.Ordinal)).ToList();
            if (missing.Count > 0)
                throw new CheckpointMismatchException(o.CheckpointFolder!, missing, [], []);
        }
        if (!sameHead)
        {
            // The recipe's head init scale keeps a fresh head from disturbing the backbone early on.
            using var noGrad = no_grad();
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.StartsWith("classifier.", StringComparison.Ordinal)))
                p.mul_(o.HeadInitScale);
        }
        return model;
    }

    /// <summary>
    /// Turns a checkpoint with one shared relative position bias into per-layer tables, each a copy of the shared
    /// one, as the original BEiT code does before fine-tuning.
    /// </summary>
    public static (BeitConfig Config, Dictionary<string, TensorData> Tensors) ExpandSharedRelativePositionBias(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors)
    {
        var c = config.Clone();
        c.UseSharedRelativePositionBias = false;
        c.UseRelativePositionBias = true;
        var t = new Dictionary<string, TensorData>(tensors);
        const string shared = "beit.encoder.relative_position_bias.relative_position_bias_table";
        if (t.Remove(shared, out var table))
        {
            for (int i = 0; i < c.NumHiddenLayers; i++)
                t[$"beit.encoder.layer.{i}.attention.attention.relative_position_bias.relative_position_bias_table"] = table;
        }
        t.Remove("beit.encoder.relative_position_bias.relative_position_index");
        return (c, t);
    }

    /// <summary>
    /// A from-scratch configuration suited to the data: patch size giving a 7×7 to 14×14 grid at the images' size,
    /// and a width that trains in minutes on a few CPU cores.
    /// </summary>
    public static BeitConfig DefaultConfig(BeitTrainingImages train, Options o)
    {
        int size = o.ImageSize ?? Math.Min(train.Height, train.Width);
        int patch = size <= 32 ? 4 : size <= 64 ? 8 : 16;
        return new BeitConfig
        {
            ImageSize = size,
            PatchSize = patch,
            HiddenSize = 192,
            NumHiddenLayers = 6,
            NumAttentionHeads = 3,
            IntermediateSize = 384,
            UseRelativePositionBias = true,
            UseMeanPooling = true,
            LayerScaleInitValue = 0.1,
            DropPathRate = o.DropPathRate,
            LayerNormEps = 1e-6,
        };
    }

    // A fixed mix (HashCode is randomised per process, which would break resuming in a new process).
    private static int Mix(int seed, int epoch, int batch)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)(epoch + 1) * 0xBF58476D1CE4E5B9UL + (ulong)(batch + 2) * 0x94D049BB133111EBUL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7fffffff);
    }

    private sealed record TrainerState(int EpochsDone, int BestEpoch, double BestScore, int BadEpochs, List<BeitEpochMetrics> History);

    private static void SaveCheckpoint(string dir, BeitForImageClassification model, BeitAdamW optimizer, TrainerState state, Dictionary<string, TensorData>? best)
    {
        Directory.CreateDirectory(dir);
        WriteFolderAtomically(Path.Combine(dir, "last"), tmp =>
        {
            model.SavePretrained(tmp);
            SafeTensors.Write(Path.Combine(tmp, OptimizerStateFile), optimizer.StateDict());
            File.WriteAllText(Path.Combine(tmp, TrainerStateFile), JsonSerializer.Serialize(state));
        });
        if (best is not null)
            WriteFolderAtomically(Path.Combine(dir, "best"), tmp => BeitCheckpoint.Save(tmp, model.Config, best));
    }

    private static TrainerState ResumeFrom(string last, BeitForImageClassification model, BeitAdamW optimizer)
    {
        model.LoadWeights(BeitCheckpoint.ReadTensors(last), last);
        optimizer.LoadStateDict(SafeTensors.Read(Path.Combine(last, OptimizerStateFile)));
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(last, TrainerStateFile)))
            ?? throw new InvalidDataException($"'{last}/{TrainerStateFile}' is empty.");
    }

    // Writes a whole folder under a temporary name and swaps it in, so a crash or cancel never leaves half a checkpoint.
    internal static void WriteFolderAtomically(string folder, Action<string> write)
    {
        string tmp = folder + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        string old = folder + ".old-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            write(tmp);
            if (Directory.Exists(folder)) Directory.Move(folder, old);
            Directory.Move(tmp, folder);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            if (Directory.Exists(old)) Directory.Delete(old, true);
        }
    }
}
