using Microsoft.ML.Beit.Checkpoints;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Options shared by the BEiT trainers (fine-tuning and pre-training): start point, schedule, the recipe's optimizer
/// settings, augmentation, validation, checkpoints, device and reporting.
/// </summary>
public abstract class BeitTrainerOptions
{
    /// <summary>Start from this Hugging Face checkpoint folder or Hub model id (or a folder written by our pre-training); null trains from scratch.</summary>
    public string? CheckpointFolder { get; set; }
    /// <summary>From-scratch configuration; null lets the trainer pick one suited to the data.</summary>
    public BeitConfig? Config { get; set; }
    /// <summary>Model input side for a from-scratch model; null uses the images' size.</summary>
    public int? ImageSize { get; set; }
    /// <summary>Passes over the training set. Unset: chosen from the data by the classification trainer (10 elsewhere).</summary>
    public int Epochs { get => ExplicitEpochs ?? 10; set => ExplicitEpochs = value; }
    /// <summary>Images per optimizer step. Unset: chosen from the image size by the classification trainer (64 elsewhere).</summary>
    public int BatchSize { get => ExplicitBatchSize ?? 64; set => ExplicitBatchSize = value; }
    /// <summary>Skip a last, smaller batch each epoch.</summary>
    public bool DropLastBatch { get; set; }
    /// <summary>Peak learning rate. Unset: scaled with the batch by the classification trainer (1e-3 elsewhere).</summary>
    public double LearningRate { get => ExplicitLearningRate ?? 1e-3; set => ExplicitLearningRate = value; }
    /// <summary>Learning rate the cosine decays towards.</summary>
    public double MinLearningRate { get; set; } = 1e-6;
    /// <summary>Epochs of linear warm-up (fractions allowed). Unset: chosen by the classification trainer (1 elsewhere).</summary>
    public double WarmupEpochs { get => ExplicitWarmupEpochs ?? 1; set => ExplicitWarmupEpochs = value; }
    /// <summary>Layer-wise learning-rate decay; 1 disables it. Unset: 0.65 from a checkpoint, 1 from scratch in the classification trainer (0.65 elsewhere).</summary>
    public double LayerDecay { get => ExplicitLayerDecay ?? 0.65; set => ExplicitLayerDecay = value; }
    /// <summary>AdamW weight decay (not applied to biases, norms, tables, tokens).</summary>
    public double WeightDecay { get; set; } = 0.05;
    /// <summary>Exempt biases, norms, layer-scale lambdas, tokens and position tables from weight decay (the recipe); false decays every tensor, as a plain <c>torch.optim.AdamW</c> over all parameters does.</summary>
    public bool ExemptFromWeightDecay { get; set; } = true;
    /// <summary>AdamW β1.</summary>
    public double Beta1 { get; set; } = 0.9;
    /// <summary>AdamW β2.</summary>
    public double Beta2 { get; set; } = 0.999;
    /// <summary>AdamW ε.</summary>
    public double AdamEpsilon { get; set; } = 1e-8;
    /// <summary>Stochastic depth rate (linear over layers). Unset: chosen by the classification trainer (0.1 elsewhere).</summary>
    public double DropPathRate { get => ExplicitDropPathRate ?? 0.1; set => ExplicitDropPathRate = value; }
    /// <summary>Random resized crop (and flip, see <see cref="HorizontalFlip"/>) while training. Unset: off for small grey images in the classification trainer (on elsewhere).</summary>
    public bool Augment { get => ExplicitAugment ?? true; set => ExplicitAugment = value; }
    /// <summary>Smallest random crop, as a fraction of the image area. Unset: chosen from the data size by the classification trainer (0.08 elsewhere).</summary>
    public double RandomCropMinScale { get => ExplicitRandomCropMinScale ?? 0.08; set => ExplicitRandomCropMinScale = value; }
    /// <summary>Flip half the training images horizontally.</summary>
    public bool HorizontalFlip { get; set; } = true;
    /// <summary>Clip the global gradient norm to this value; 0 disables clipping.</summary>
    public double GradientClipNorm { get; set; }
    /// <summary>Fraction of the training images held out for validation when no validation set is given; 0 disables. Unset: chosen from the data size by the classification trainer (0.1 elsewhere).</summary>
    public double ValidationFraction { get => ExplicitValidationFraction ?? 0.1; set => ExplicitValidationFraction = value; }
    /// <summary>Stop after this many epochs without a better validation accuracy, and keep the best epoch's weights; 0 disables.</summary>
    public int EarlyStoppingPatience { get; set; }
    /// <summary>
    /// A training-time budget (validation included; null disables). Training stops within one batch of it, and the
    /// warm-up + cosine schedule advances by steps or by elapsed time, whichever is further, so the learning rate has
    /// annealed by the deadline; <see cref="Epochs"/> is then an upper bound. Runs that hit the budget depend on the
    /// machine's speed, so leave it unset where results must be reproducible.
    /// </summary>
    public TimeSpan? MaxTrainingTime { get; set; }
    /// <summary>Folder for checkpoints (<c>last/</c> after every epoch, <c>best/</c>); a run finds <c>last/</c> there and resumes from it.</summary>
    public string? CheckpointDirectory { get; set; }
    /// <summary>Seed of every random choice (initialisation, shuffling, augmentation, drop path).</summary>
    public int Seed { get; set; }
    /// <summary>TorchSharp device, e.g. <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; set; } = "cpu";
    /// <summary>Run linear layers in bfloat16 while training (<see cref="BeitAutocast"/>); weights and the exported model stay float32. Unset: on only where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX) in the classification trainer; true on an emulating CPU trains (with a warning) but many times slower.</summary>
    public bool Bf16Autocast { get => ExplicitBf16Autocast ?? false; set => ExplicitBf16Autocast = value; }
    /// <summary>
    /// Precision of the ONNX graph the fine-tuning trainers export for scoring (<c>Fit</c>'s transformer, <c>ToTransformer</c>,
    /// the saved <c>model.zip</c>): <see cref="Onnx.BeitOnnxPrecision.Int8"/> for the fastest CPU scoring. Float16 needs a
    /// GPU to score on and is refused there on the CPU. Pre-training exports nothing and ignores it.
    /// </summary>
    public Onnx.BeitOnnxPrecision ExportPrecision { get; set; } = Onnx.BeitOnnxPrecision.Float32;
    /// <summary>libtorch intra-op threads; null keeps the current setting.</summary>
    public int? NumThreads { get; set; }
    /// <summary>Called after every epoch.</summary>
    public Action<BeitEpochMetrics>? EpochCallback { get; set; }
    /// <summary>Receives a <see cref="BeitTrainingProgress"/> after every optimizer step, at the end of every epoch and for every k-means iteration of pre-training's tokenizer; the same events reach <c>MLContext.Log</c> when the trainer came from <c>mlContext.BeitTrainers()</c>.</summary>
    public IProgress<BeitTrainingProgress>? Progress { get; set; }

    // The values the user set (null: unset), so automatic defaults never override an explicit choice.
    internal int? ExplicitEpochs, ExplicitBatchSize;
    internal double? ExplicitLearningRate, ExplicitWarmupEpochs, ExplicitLayerDecay, ExplicitDropPathRate, ExplicitRandomCropMinScale, ExplicitValidationFraction;
    internal bool? ExplicitAugment, ExplicitBf16Autocast;

    /// <summary>A shallow copy (callbacks shared), for a run's resolved settings.</summary>
    internal BeitTrainerOptions CloneOptions() => (BeitTrainerOptions)MemberwiseClone();

    /// <summary>
    /// What a fine-tuning run starts from: the checkpoint's configuration and tensors (a shared relative position bias
    /// expanded per layer), or a new configuration (<see cref="Config"/>, else <paramref name="defaultConfig"/>) and none.
    /// </summary>
    internal (BeitConfig Config, Dictionary<string, TensorData>? Tensors) FineTuningStart(Func<BeitConfig> defaultConfig)
    {
        if (CheckpointFolder is string folder)
        {
            var (config, tensors) = FineTuningCheckpoint.Load(folder);
            return (config, tensors);
        }
        return (Config?.Clone() ?? defaultConfig(), null);
    }

    /// <summary>Throws <see cref="ArgumentException"/> for settings no run can use.</summary>
    internal virtual void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), "must be at least 1.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), "must be at least 1.");
        if (LearningRate <= 0) throw new ArgumentOutOfRangeException(nameof(LearningRate), "must be positive.");
        if (LayerDecay <= 0 || LayerDecay > 1) throw new ArgumentOutOfRangeException(nameof(LayerDecay), "must be in (0, 1].");
        if (ValidationFraction is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(ValidationFraction), "must be in [0, 1).");
        if (DropPathRate is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(DropPathRate), "must be in [0, 1).");
        if (RandomCropMinScale is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(RandomCropMinScale), "must be in (0, 1].");
        if (MaxTrainingTime is TimeSpan t && t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MaxTrainingTime), "must be positive (or null for no budget).");
        if (CheckpointFolder is not null && Config is not null)
            throw new ArgumentException("Give either CheckpointFolder (fine-tuning) or Config (from scratch), not both.");
    }
}
