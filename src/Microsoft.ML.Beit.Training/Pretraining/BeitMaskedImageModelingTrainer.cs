using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Pretraining;

/// <summary>
/// BEiT pre-training on unlabeled images (masked image modeling, Bao et al. 2021, arXiv:2106.08254): blockwise-masked patches are replaced by the mask token
/// and <see cref="BeitForMaskedImageModeling"/> learns to predict their visual tokens from a tokenizer
/// (<see cref="IBeitVisualTokenizer"/>: a user-supplied ONNX dVAE, or k-means learnt from the same images). Settings
/// follow the paper: AdamW, warm-up + cosine, layer scale, shared relative position bias, drop path, gradient
/// clipping. The result is a Hugging Face checkpoint folder that the fine-tuning trainers accept directly.
/// </summary>
public sealed partial class BeitMaskedImageModelingTrainer
{
    /// <summary>Options of <see cref="BeitMaskedImageModelingTrainer"/>.</summary>
    public sealed class Options : BeitTrainerOptions
    {
        /// <summary>Creates options with the paper's pre-training settings (scaled to small data where noted).</summary>
        public Options()
        {
            LearningRate = 1.5e-3;
            MinLearningRate = 1e-5;
            WeightDecay = 0.05;
            LayerDecay = 1.0;
            GradientClipNorm = 3.0;
            DropPathRate = 0.1;
            RandomCropMinScale = 0.4;
            ValidationFraction = 0.02;
        }

        /// <summary>The tokenizer; null learns a <see cref="KMeansPatchTokenizer"/> from the training images.</summary>
        public IBeitVisualTokenizer? Tokenizer { get; set; }
        /// <summary>Settings of the k-means tokenizer learnt when <see cref="Tokenizer"/> is null.</summary>
        public KMeansPatchTokenizer.Options KMeans { get; set; } = new();
        /// <summary>Pixel-values column read by <c>Fit</c> (from <c>mlContext.Transforms.BeitImageProcessor</c>).</summary>
        public string FeatureColumnName { get; set; } = "PixelValues";
        /// <summary>Pooled-embedding column of the featurizer <c>Fit</c> returns.</summary>
        public string OutputColumnName { get; set; } = "Features";
        /// <summary>Fraction of patches masked in each image (the paper's 75 of 196 ≈ 0.4).</summary>
        public double MaskRatio { get; set; } = 75.0 / 196;
        /// <summary>Smallest masked block, as a fraction of the grid (the paper's 16 of 196).</summary>
        public double MinMaskBlockFraction { get; set; } = 16.0 / 196;

        internal override void Validate()
        {
            base.Validate();
            if (MaskRatio is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(MaskRatio), "must be in (0, 1).");
            if (MinMaskBlockFraction is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(MinMaskBlockFraction), "must be in (0, 1].");
        }
    }

    private readonly Options _options;
    private readonly MLContext? _mlContext;

    /// <summary>Creates a trainer with <paramref name="options"/> (defaults when null).</summary>
    public BeitMaskedImageModelingTrainer(Options? options = null)
    {
        _options = options ?? new Options();
        _options.Validate();
    }

    /// <summary>Creates a trainer whose messages go to <paramref name="mlContext"/>'s log; <c>mlContext.BeitTrainers().MaskedImageModeling</c> calls it.</summary>
    public BeitMaskedImageModelingTrainer(MLContext mlContext, Options options) : this(options)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        _mlContext = mlContext;
    }

    /// <summary>The pre-trained model (eval mode), its tokenizer and history.</summary>
    /// <param name="Model">The model.</param>
    /// <param name="Tokenizer">The tokenizer its targets came from.</param>
    /// <param name="History">Metrics per epoch; validation accuracy is the masked-token accuracy.</param>
    public sealed record Result(BeitForMaskedImageModeling Model, IBeitVisualTokenizer Tokenizer, IReadOnlyList<BeitEpochMetrics> History);

    /// <summary>Pre-trains on <paramref name="images"/> (labels, if any, are ignored).</summary>
    /// <exception cref="OperationCanceledException">Cancelled; only whole checkpoints are left.</exception>
    public Result Train(BeitTrainingImages images, CancellationToken cancellationToken = default)
    {
        var o = _options;
        using var log = TrainingChannel.Start(_mlContext, nameof(BeitMaskedImageModelingTrainer));
        if (images.Count == 0) throw new ArgumentException("No images.");
        if (o.NumThreads is int threads) torch.set_num_threads(threads);
        var device = new Device(o.Device);
        BeitTrainingImages train = images, validation = images;
        bool hasValidation = o.ValidationFraction > 0 && images.Count >= 10;
        if (hasValidation)
        {
            int n = Math.Max(1, (int)Math.Round(images.Count * o.ValidationFraction));
            var idx = Enumerable.Range(0, images.Count).ToArray();
            new Random(o.Seed).Shuffle(idx);
            validation = images.Subset(idx[..n].Order().ToArray());
            train = images.Subset(idx[n..].Order().ToArray());
        }

        var model = CreateModel(train, out int patch);
        var tokenizer = o.Tokenizer ?? FitKMeans(train, patch, model.Config.ImageSize, log, cancellationToken);
        if (tokenizer.VocabSize != model.Config.VocabSize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabSize} tokens but the model's vocab_size is {model.Config.VocabSize}.");
        model.to(device);
        int grid = model.Config.ImageSize / patch;
        int target = Math.Max(1, (int)Math.Round(o.MaskRatio * grid * grid));
        var maskOptions = new BlockwiseMaskingGenerator.Options
        {
            GridHeight = grid, GridWidth = grid, NumMaskingPatches = target,
            MinNumPatches = Math.Max(1, Math.Min(target, (int)Math.Round(o.MinMaskBlockFraction * grid * grid))),
        };

        Func<ValidationResult>? validate = !hasValidation ? null : () =>
        {
            var (loss, accuracy) = Evaluate(model, tokenizer, validation, maskOptions, o.BatchSize, o.Seed, device);
            return new ValidationResult(loss, accuracy, double.NaN, double.NaN, accuracy);
        };
        var (history, _) = TrainingLoop.Run(o, model, train.Count, (indices, seed, rng) =>
        {
            // The masked-image-modeling task: augmented view, blockwise mask, cross-entropy on the masked patches' tokens.
            var (x, _) = train.Batch(indices, device);
            x = BatchAugmentation.TrainingView(x, null, model.Config.ImageSize, o, rng).Images;
            var (mask, labels) = MasksAndTargets(tokenizer, x, patch, maskOptions with { Seed = seed });
            return model.forward(x, mask, labels).Loss!;
        }, validate, cancellationToken, log);
        return new Result(model, tokenizer, history);
    }

    /// <summary>
    /// Writes the pre-trained checkpoint (<c>config.json</c> + <c>model.safetensors</c>, Hugging Face format) and, for a
    /// k-means tokenizer, <see cref="KMeansPatchTokenizer.FileName"/> beside it — all or nothing.
    /// </summary>
    public static void Save(Result result, string folder)
    {
        Microsoft.ML.Beit.IO.AtomicFile.WriteFolder(Path.GetFullPath(folder), tmp =>
        {
            result.Model.SavePretrained(tmp);
            if (result.Tokenizer is KMeansPatchTokenizer kmeans) kmeans.Save(tmp);
        });
    }

    // Masks from the blockwise generator and the tokenizer's ids of the masked patches (row-major over the batch).
    private static (Tensor Mask, Tensor Labels) MasksAndTargets(IBeitVisualTokenizer tokenizer, Tensor x, int patch, BlockwiseMaskingGenerator.Options maskOptions)
    {
        var generator = new BlockwiseMaskingGenerator(maskOptions);
        long b = x.shape[0];
        int n = maskOptions.GridHeight * maskOptions.GridWidth;
        var flat = new bool[b * n];
        for (int i = 0; i < b; i++) generator.Next().CopyTo(flat, i * n);
        var mask = tensor(flat, [b, n]).to(x.device);
        Tensor tokens;
        using (no_grad()) tokens = tokenizer.Tokenize(x, patch);
        return (mask, tokens.index(mask));
    }

    /// <summary>Masked-token cross-entropy and accuracy on <paramref name="data"/> with masks fixed by <paramref name="seed"/>.</summary>
    internal static (double Loss, double Accuracy) Evaluate(BeitForMaskedImageModeling model, IBeitVisualTokenizer tokenizer, BeitTrainingImages data,
        BlockwiseMaskingGenerator.Options maskOptions, int batchSize, int seed, Device? device = null)
    {
        int patch = model.Config.PatchSize, size = model.Config.ImageSize;
        double lossSum = 0;
        long correct = 0, total = 0;
        TrainingLoop.ForEachEvalBatch(model, data.Count, batchSize, (from, indices) =>
        {
            var (x, _) = data.Batch(indices, device);
            x = BatchAugmentation.ResizeTo(x, size);
            var (mask, labels) = MasksAndTargets(tokenizer, x, patch, maskOptions with { Seed = seed + from });
            var output = model.forward(x, mask, labels);
            long m = labels.shape[0];
            lossSum += output.Loss!.item<float>() * m;
            correct += output.Logits.index(mask).argmax(1).eq(labels).sum().item<long>();
            total += m;
        });
        return (lossSum / Math.Max(1, total), (double)correct / Math.Max(1, total));
    }

    private KMeansPatchTokenizer FitKMeans(BeitTrainingImages train, int patch, int size, Microsoft.ML.Runtime.IChannel? log, CancellationToken cancellationToken)
    {
        var o = _options;
        IEnumerable<Tensor> Batches()
        {
            var all = Enumerable.Range(0, train.Count).ToArray();
            new Random(o.Seed).Shuffle(all);
            for (int from = 0; from < all.Length; from += 256)
            {
                var (x, y) = train.Batch(all.AsSpan(from, Math.Min(256, all.Length - from)));
                y.Dispose();
                var resized = BatchAugmentation.ResizeTo(x, size);
                if (!ReferenceEquals(resized, x)) x.Dispose();
                yield return resized;
            }
        }
        var kmeans = o.KMeans;
        var options = new KMeansPatchTokenizer.Options
        {
            VocabSize = kmeans.VocabSize, Iterations = kmeans.Iterations, MaxSamples = kmeans.MaxSamples,
            StandardizePatches = kmeans.StandardizePatches, Seed = o.Seed,
        };
        // Batches are created while Fit enumerates them, so Fit's own dispose scope frees them.
        var progress = new TokenizerProgress(o, log);
        return KMeansPatchTokenizer.Fit(Batches(), patch, options, progress, cancellationToken);
    }

    private BeitForMaskedImageModeling CreateModel(BeitTrainingImages train, out int patch)
    {
        var o = _options;
        torch.random.manual_seed(o.Seed);
        BeitConfig config;
        Dictionary<string, TensorData>? tensors = null;
        if (o.CheckpointFolder is string folder)
        {
            (config, tensors) = BeitCheckpoint.Load(folder);
        }
        else
        {
            config = o.Config?.Clone() ?? BeitTrainingDefaults.Config(o.ImageSize ?? Math.Min(train.Height, train.Width), o.DropPathRate);
            if (o.Config is null)
            {
                config.UseRelativePositionBias = false;
                config.UseSharedRelativePositionBias = true;
            }
        }
        config.UseMaskToken = true;
        config.DropPathRate = o.DropPathRate;
        config.Architectures = ["BeitForMaskedImageModeling"];
        config.VocabSize = o.Tokenizer?.VocabSize ?? o.KMeans.VocabSize;
        config.Id2Label = new SortedDictionary<int, string>();
        patch = config.PatchSize;
        var model = new BeitForMaskedImageModeling(config);
        if (tensors is not null)
        {
            var load = tensors.Where(kv => kv.Key.StartsWith("beit.", StringComparison.Ordinal) || kv.Key.StartsWith("layernorm.", StringComparison.Ordinal)
                    || (kv.Key.StartsWith("lm_head.", StringComparison.Ordinal) && kv.Value.Shape[0] == config.VocabSize))
                .Where(kv => !kv.Key.StartsWith("beit.pooler.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => kv.Value);
            model.LoadWeights(load, o.CheckpointFolder!, strict: false);
        }
        return model;
    }

    // k-means iterations reach the one progress record and the ML.NET log like training steps do.
    private sealed class TokenizerProgress(BeitTrainerOptions o, Microsoft.ML.Runtime.IChannel? log) : IProgress<BeitTrainingProgress>
    {
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

        public void Report(BeitTrainingProgress value)
        {
            var p = value with { Epochs = o.Epochs, Elapsed = _clock.Elapsed };
            if (p.Message is string m) log?.Info(Microsoft.ML.Runtime.MessageSensitivity.None, m);
            o.Progress?.Report(p);
        }
    }
}
