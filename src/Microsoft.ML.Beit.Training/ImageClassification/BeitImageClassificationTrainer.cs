using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Evaluation;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.ImageClassification;

/// <summary>
/// Fine-tunes (or trains from scratch) <see cref="BeitForImageClassification"/> with the BEiT paper's recipe:
/// layer-wise learning-rate decay, AdamW without decay on biases/norms/tables/tokens, warm-up + cosine schedule,
/// drop path, label smoothing, random resized crop + flip and optional mixup/cutmix, early stopping on a
/// validation set, checkpoints with exact resume, and cancellation within one batch.
/// </summary>
public sealed partial class BeitImageClassificationTrainer
{
    private readonly Options _options;
    private readonly MLContext? _mlContext;

    /// <summary>
    /// Creates a trainer with <paramref name="options"/> (defaults when null) for <see cref="Train"/>. Use
    /// <c>mlContext.BeitTrainers().ImageClassification(...)</c> for the ML.NET estimator (<c>Fit</c>).
    /// </summary>
    public BeitImageClassificationTrainer(Options? options = null)
    {
        _options = options ?? new Options();
        _options.Validate();
    }

    /// <summary>
    /// Creates a trainer whose messages go to <paramref name="mlContext"/>'s log and whose <c>Fit</c> returns a
    /// transformer of that context (its seed, log and GPU device); <c>mlContext.BeitTrainers().ImageClassification</c> calls it.
    /// </summary>
    public BeitImageClassificationTrainer(MLContext mlContext, Options options) : this(options)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        _mlContext = mlContext;
    }

    /// <summary>The options of this trainer.</summary>
    public Options TrainerOptions => _options;

    /// <summary>The result of <see cref="Train"/>: the model (best validation epoch when early stopping ran) and its history.</summary>
    /// <param name="Model">The trained model, in eval mode.</param>
    /// <param name="History">Metrics of every epoch run (resumed epochs included).</param>
    /// <param name="BestEpoch">Epoch whose weights <paramref name="Model"/> holds.</param>
    public sealed record Result(BeitForImageClassification Model, IReadOnlyList<BeitEpochMetrics> History, int BestEpoch)
    {
        /// <summary>The settings the trainer chose for options left unset, each with its reason, and any warning (e.g. emulated bf16).</summary>
        public IReadOnlyList<string> Notes { get; init; } = [];
        /// <summary>The time budget and every trial of the search that chose the final run's settings; null when explicit epochs bounded the run.</summary>
        public BeitSearchReport? Search { get; init; }
        /// <summary>Images the model was trained on (the validation split excluded).</summary>
        public int TrainCount { get; init; }
        /// <summary>Images held out to validate each epoch (and rank search trials); 0 without validation.</summary>
        public int ValidationCount { get; init; }
    }

    /// <summary>
    /// Trains on <paramref name="train"/>, validating on <paramref name="validation"/> (or a stratified
    /// <see cref="BeitTrainerOptions.ValidationFraction"/> of <paramref name="train"/> when null and the fraction is positive).
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled; checkpoints already written stay valid, nothing else is written.</exception>
    public Result Train(BeitTrainingImages train, BeitTrainingImages? validation = null, CancellationToken cancellationToken = default)
    {
        using var channel = TrainingChannel.Start(_mlContext, nameof(BeitImageClassificationTrainer));
        return TrainCore(train, validation, cancellationToken, channel);
    }

    private Result TrainCore(BeitTrainingImages train, BeitTrainingImages? validation, CancellationToken cancellationToken, IChannel? log)
    {
        // Options the user left unset are chosen from the data and the CPU (BeitTrainingDefaults); explicit ones win.
        var stats = BeitTrainingDefaults.DataStats.Of(train);
        var choice = BeitTrainingDefaults.Choose(stats, CpuFeatures.Current, _options);
        var o = BeitTrainingDefaults.Apply(_options, choice);
        o.Validate();
        var notes = new List<string>(choice.Reasons);
        if (choice.Warning is string warning) notes.Insert(0, "warning: " + warning); // TrainingLoop logs it
        foreach (var reason in choice.Reasons) log?.Info(MessageSensitivity.None, "auto: " + reason);
        if (validation is null && o.ValidationFraction > 0 && train.Count >= 2 * train.ClassNames.Count)
            (train, validation) = train.Split(o.ValidationFraction, o.Seed);
        if (train.Count == 0) throw new ArgumentException("No training images.");
        if (o.NumThreads is int threads) torch.set_num_threads(threads);
        var device = new Device(o.Device);
        // The time budget and the successive-halving search over the settings left unset (BeitHyperparameterSearch).
        // Trials validate on at most 1,000 of the validation images (stratified), so ranking stays cheap on large data.
        var trialValidation = validation is { Count: > 1000 } ? validation.Split(1000.0 / validation.Count, o.Seed + 3).Validation : validation;
        // Luminance-only runs train on grey copies (made once, on first use) and fold the conversion into the model.
        BeitTrainingImages? lumaTrain = null, lumaValidation = null, lumaTrialValidation = null;
        (BeitTrainingImages Train, BeitTrainingImages? Validation, BeitTrainingImages? Trial) DataFor(Options run) => run.LuminanceOnly
            ? (lumaTrain ??= train.ToLuminance(), lumaValidation ??= validation?.ToLuminance(),
               lumaTrialValidation ??= ReferenceEquals(trialValidation, validation) ? lumaValidation : trialValidation?.ToLuminance())
            : (train, validation, trialValidation);
        var (final, search) = BeitHyperparameterSearch.Run(_options, o, stats, train.Count, trialValidation?.Count ?? 0, (trial, keepWeights) =>
        {
            var data = DataFor(trial);
            var (trialModel, trialHistory, _) = RunOnce(trial, data.Train, data.Trial, device, cancellationToken, null);
            using (trialModel)
                return (trialHistory, keepWeights ? trialModel.ToTensorData() : null);
        }, cancellationToken, log);
        if (search is not null) notes.Add(search.Trials.Count > 0 ? $"search: {search.Trials.Count} trials, final run {search.Winner}" : $"time budget {search.Budget:mm\\:ss}");
        var finalData = DataFor(final);
        var (model, history, best) = RunOnce(final, finalData.Train, finalData.Validation, device, cancellationToken, log);
        return new Result(model, history, best) { Notes = notes, Search = search, TrainCount = train.Count, ValidationCount = validation?.Count ?? 0 };
    }

    // One training run of a new (or checkpoint-initialised) model with the resolved options.
    private static (BeitForImageClassification Model, List<BeitEpochMetrics> History, int Best) RunOnce(Options o, BeitTrainingImages train,
        BeitTrainingImages? validation, Device device, CancellationToken cancellationToken, IChannel? log)
    {
        var model = CreateModel(train, o);
        model.to(device);
        Func<ValidationResult>? validate = validation is null ? null : () =>
        {
            var (loss, accuracy, f1) = Evaluate(model, validation, o.BatchSize, device);
            return new ValidationResult(loss, accuracy, f1, double.NaN, accuracy);
        };
        try
        {
            var (history, best) = TrainingLoop.Run(o, model, train.Count,
                (indices, _, rng) => TaskLoss(o, model, train, indices, rng, device), validate, cancellationToken, log);
            if (o.LuminanceOnly) FoldLuminance(model, train.ImageMean, train.ImageStd);
            return (model, history, best);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    // The classification task: augmented batch, optional mixup/cutmix, (soft-target) cross-entropy.
    private static Tensor TaskLoss(Options o, BeitForImageClassification model, BeitTrainingImages data, ReadOnlySpan<int> indices, Random rng, Device device)
    {
        var (x, y) = data.Batch(indices, device);
        x = BatchAugmentation.ClassificationView(x, model.Config.ImageSize, o, data.ImageMean, data.ImageStd, rng);
        bool soft = o.LabelSmoothing > 0 || o.MixupAlpha > 0 || o.CutmixAlpha > 0;
        if (!soft) return model.forward(x, y).Loss!;
        var targets = BatchAugmentation.SoftTargets(y, data.ClassNames.Count, o.LabelSmoothing);
        if (o.MixupAlpha > 0 || o.CutmixAlpha > 0)
            (x, targets) = BatchAugmentation.MixupOrCutmix(x, targets, o.MixupAlpha, o.CutmixAlpha, 0.5, rng);
        var logits = model.forward(x).Logits;
        return -(targets * nn.functional.log_softmax(logits, 1)).sum(1).mean();
    }

    /// <summary>Loss, accuracy and macro-F1 of <paramref name="model"/> on <paramref name="data"/>, in eval mode.</summary>
    internal static (double Loss, double Accuracy, double MacroF1) Evaluate(BeitForImageClassification model, BeitTrainingImages data, int batchSize, Device? device = null)
    {
        var cm = Predict(model, data, batchSize, device, out double loss);
        return (loss, cm.Accuracy, cm.MacroF1);
    }

    /// <summary>The confusion matrix of <paramref name="model"/> on <paramref name="data"/>, with the mean cross-entropy.</summary>
    internal static ConfusionMatrixMetrics Predict(BeitForImageClassification model, BeitTrainingImages data, int batchSize, Device? device, out double meanLoss)
    {
        var cm = new ConfusionMatrixMetrics(data.ClassNames);
        double lossSum = 0;
        int size = model.Config.ImageSize;
        TrainingLoop.ForEachEvalBatch(model, data.Count, batchSize, (_, indices) =>
        {
            var (x, y) = data.Batch(indices, device);
            var logits = model.forward(BatchAugmentation.ResizeTo(x, size)).Logits;
            lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).item<float>();
            var pred = logits.argmax(1).cpu().data<long>().ToArray();
            var truth = y.cpu().data<long>().ToArray();
            for (int i = 0; i < indices.Length; i++) cm.Add((int)truth[i], (int)pred[i]);
        });
        meanLoss = lossSum / Math.Max(1, data.Count);
        return cm;
    }

    private static BeitForImageClassification CreateModel(BeitTrainingImages train, Options o)
    {
        torch.random.manual_seed(o.Seed);
        var (config, tensors) = o.FineTuningStart(() => DefaultConfig(train, o));
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
        if (!sameHead && tensors is not null)
        {
            // The recipe's head init scale keeps a fresh head from disturbing the backbone early on.
            using var noGrad = no_grad();
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.StartsWith("classifier.", StringComparison.Ordinal)))
                p.mul_(o.HeadInitScale);
        }
        if (o.InitialWeights is not null) model.LoadWeights(o.InitialWeights, "the search's winning trial");
        return model;
    }

    /// <summary>
    /// Makes a model trained on grey images (every channel the luma of the colour image) compute the same on the colour
    /// image itself: the patch projection's three input channels become one luma-weighted kernel, with the normalisation
    /// (per-channel mean and std) carried through, so exported and saved models take colour input as usual.
    /// </summary>
    /// <remarks>
    /// With normalised inputs x̂_c = (x_c − m_c)/s_c and grey g = Σ_c ℓ_c·x_c fed to every channel, the projection
    /// computes Σ_c W_c·(g − m_c)/s_c = K·g − Σ_c W_c·m_c/s_c with K = Σ_c W_c/s_c; substituting x_c = s_c·x̂_c + m_c
    /// gives weights K·ℓ_c·s_c on x̂_c and the constant K·Σ_c ℓ_c·m_c − Σ_c W_c·m_c/s_c, summed over the kernel, added to
    /// the bias. Exact up to the rounding of the grey training images to 8 bits.
    /// </remarks>
    internal static void FoldLuminance(BeitPreTrainedModel model, float[] mean, float[] std)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var w = parameters["beit.embeddings.patch_embeddings.projection.weight"];
        var b = parameters["beit.embeddings.patch_embeddings.projection.bias"];
        var m = tensor(mean, [1, 3, 1, 1]).to(w.dtype).to(w.device);
        var s = tensor(std, [1, 3, 1, 1]).to(w.dtype).to(w.device);
        var luma = tensor(BeitTrainingImages.Luma, [1, 3, 1, 1]).to(w.dtype).to(w.device);
        var k = (w / s).sum(1, keepdim: true);
        var bias = b + k.sum([1, 2, 3]) * (luma * m).sum() - (w * m / s).sum([1, 2, 3]);
        w.copy_(k * luma * s);
        b.copy_(bias);
    }

    /// <summary>
    /// A from-scratch configuration suited to the data: patch size giving a 7×7 to 14×14 grid at the images' size,
    /// and a width that trains in minutes on a few CPU cores.
    /// </summary>
    internal static BeitConfig DefaultConfig(BeitTrainingImages train, Options o) =>
        BeitTrainingDefaults.Config(o.ImageSize ?? Math.Min(train.Height, train.Width), o.DropPathRate);
}
