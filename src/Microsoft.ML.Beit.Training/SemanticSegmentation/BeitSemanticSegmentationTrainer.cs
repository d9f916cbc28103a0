using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Evaluation;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.SemanticSegmentation;

/// <summary>
/// Fine-tunes (or trains from scratch) <see cref="BeitForSemanticSegmentation"/> (UperNet + FCN auxiliary head) with
/// the same recipe and loop as <see cref="BeitImageClassificationTrainer"/>: layer-wise decay, AdamW, warm-up +
/// cosine, drop path, random resized crop + flip applied to image and label map alike (labels resized nearest),
/// cross-entropy with ignore index 255 plus the weighted auxiliary loss, and mean IoU on validation.
/// </summary>
public sealed class BeitSemanticSegmentationTrainer
{
    /// <summary>Options of <see cref="BeitSemanticSegmentationTrainer"/>; the defaults suit small data.</summary>
    public sealed class Options : BeitTrainerOptions
    {
        /// <summary>Creates options with segmentation-friendly defaults (larger crops: small objects should stay visible).</summary>
        public Options()
        {
            RandomCropMinScale = 0.5;
            LayerDecay = 0.9;
            LearningRate = 5e-4;
        }
    }

    private readonly Options _options;

    /// <summary>Creates a trainer with <paramref name="options"/> (defaults when null).</summary>
    public BeitSemanticSegmentationTrainer(Options? options = null)
    {
        _options = options ?? new Options();
        _options.Validate();
    }

    /// <summary>The trained model (in eval mode), its history and the epoch whose weights it holds.</summary>
    /// <param name="Model">The trained model.</param>
    /// <param name="History">Metrics of every epoch.</param>
    /// <param name="BestEpoch">Epoch whose weights the model holds.</param>
    public sealed record Result(BeitForSemanticSegmentation Model, IReadOnlyList<BeitEpochMetrics> History, int BestEpoch);

    /// <summary>Trains on <paramref name="train"/>, validating on <paramref name="validation"/> or a held-out fraction.</summary>
    /// <exception cref="OperationCanceledException">Cancelled; only whole checkpoints are left.</exception>
    public Result Train(BeitSegmentationImages train, BeitSegmentationImages? validation = null, CancellationToken cancellationToken = default)
    {
        var o = _options;
        if (validation is null && o.ValidationFraction > 0 && train.Count >= 4)
            (train, validation) = train.Split(o.ValidationFraction, o.Seed);
        if (train.Count == 0) throw new ArgumentException("No training images.");
        if (o.NumThreads is int threads) torch.set_num_threads(threads);
        var device = new Device(o.Device);
        var model = CreateModel(train);
        model.to(device);
        Func<ValidationResult>? validate = validation is null ? null : () =>
        {
            var cm = Evaluate(model, validation, o.BatchSize, device, out double loss);
            return new ValidationResult(loss, cm.Accuracy, double.NaN, cm.MeanIoU, cm.MeanIoU);
        };
        var (history, best) = TrainingLoop.Run(o, model, train.Count,
            (indices, seed, lr, optimizer) => TrainStep(model, optimizer, train, indices, lr, seed, device), validate, cancellationToken);
        return new Result(model, history, best);
    }

    private double TrainStep(BeitForSemanticSegmentation model, Optimization.BeitAdamW optimizer, BeitSegmentationImages data, ReadOnlySpan<int> indices,
        double lr, int seed, Device device)
    {
        var o = _options;
        using var scope = NewDisposeScope();
        torch.random.manual_seed(seed);
        var rng = new Random(seed);
        var (x, y) = data.Batch(indices, device);
        var (vx, vy) = BatchAugmentation.TrainingView(x, y, model.Config.ImageSize, o, rng);
        (x, y) = (vx, vy!);
        var loss = model.forward(x, y).Loss!;
        optimizer.ZeroGrad();
        loss.backward();
        if (o.GradientClipNorm > 0) nn.utils.clip_grad_norm_(optimizer.Settings.Select(s => s.Parameter), o.GradientClipNorm);
        optimizer.Step(lr);
        return loss.item<float>();
    }

    /// <summary>
    /// The pixel confusion matrix of <paramref name="model"/> on <paramref name="data"/> (logits upsampled bilinearly to
    /// the label size, ignore index skipped), with the mean validation loss.
    /// </summary>
    public static ConfusionMatrixMetrics Evaluate(BeitForSemanticSegmentation model, BeitSegmentationImages data, int batchSize, Device? device, out double meanLoss)
    {
        var cm = new ConfusionMatrixMetrics(data.ClassNames);
        double lossSum = 0;
        int size = model.Config.ImageSize;
        TrainingLoop.ForEachEvalBatch(model, data.Count, batchSize, (_, indices) =>
        {
            var (x, y) = data.Batch(indices, device);
            var output = model.forward(BatchAugmentation.ResizeTo(x, size));
            var logits = nn.functional.interpolate(output.Logits, [data.Height, data.Width], mode: InterpolationMode.Bilinear, align_corners: false);
            lossSum += nn.functional.cross_entropy(logits, y, ignore_index: data.IgnoreIndex).item<float>() * indices.Length;
            var pred = logits.argmax(1).to(int32).cpu().data<int>().ToArray();
            var truth = y.to(int32).cpu().data<int>().ToArray();
            cm.AddMaps(truth, pred, data.IgnoreIndex);
        });
        meanLoss = lossSum / Math.Max(1, data.Count);
        return cm;
    }

    private BeitForSemanticSegmentation CreateModel(BeitSegmentationImages train)
    {
        var o = _options;
        torch.random.manual_seed(o.Seed);
        var (config, tensors) = o.FineTuningStart(() => DefaultConfig(train, o));
        if (tensors is not null && config.OutIndices is not { Length: 4 })
            config.OutIndices = DefaultOutIndices(config.NumHiddenLayers);
        bool sameHeads = tensors is not null && config.NumLabels == train.ClassNames.Count && tensors.ContainsKey("decode_head.classifier.weight");
        config.Id2Label = new SortedDictionary<int, string>(Enumerable.Range(0, train.ClassNames.Count).ToDictionary(i => i, i => train.ClassNames[i]));
        config.SemanticLossIgnoreIndex = train.IgnoreIndex;
        config.DropPathRate = o.DropPathRate;
        config.Architectures = ["BeitForSemanticSegmentation"];
        config.UseMaskToken = false;
        var model = new BeitForSemanticSegmentation(config);
        if (tensors is not null)
        {
            var load = tensors.Where(kv => !kv.Key.StartsWith("lm_head.", StringComparison.Ordinal) && kv.Key != "beit.embeddings.mask_token"
                    && !kv.Key.StartsWith("classifier.", StringComparison.Ordinal) && !kv.Key.StartsWith("beit.pooler.", StringComparison.Ordinal)
                    && (sameHeads || !(kv.Key.StartsWith("decode_head.classifier.", StringComparison.Ordinal) || kv.Key.StartsWith("auxiliary_head.classifier.", StringComparison.Ordinal))))
                .ToDictionary(kv => kv.Key, kv => kv.Value);
            model.LoadWeights(load, o.CheckpointFolder!, strict: false);
            var missing = model.LoadReport!.Missing.Where(n => n.StartsWith("beit.", StringComparison.Ordinal)).ToList();
            if (missing.Count > 0) throw new CheckpointMismatchException(o.CheckpointFolder!, missing, [], []);
        }
        return model;
    }

    /// <summary>
    /// The ML.NET pipeline of a trained model as <c>model.zip</c>: <c>ImagePath</c> → <c>LoadBeitImages</c> →
    /// <c>BeitImageProcessor</c> (resize to the model's size, mean/std 0.5, as in training) → <c>BeitSegmenter</c>
    /// (a label map at each image's own size). Written atomically.
    /// </summary>
    /// <param name="model">The trained model.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write.</param>
    /// <param name="precision">The ONNX graph's precision (<see cref="Onnx.BeitOnnxPrecision.Int8"/>: the fastest on the CPU).</param>
    public static void Save(BeitForSemanticSegmentation model, string modelPath, Onnx.BeitOnnxPrecision precision = Onnx.BeitOnnxPrecision.Float32) =>
        BeitPipelines.Package(new MLContext(seed: 0), Estimators.BeitModelSource.FromTensors(model.Config, model.ToTensorData(), "trained BEiT segmenter"),
            Onnx.BeitOnnxTask.SemanticSegmentation, modelPath,
            new BeitPipelines.Options { ExportOptions = new Onnx.BeitOnnxExportOptions { Precision = precision } });

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    /// <summary>Four evenly spaced layers ending at the last, e.g. [3, 6, 9, 12] for 12 layers or [1, 2, 3, 4] for 4.</summary>
    public static int[] DefaultOutIndices(int numLayers) =>
        Enumerable.Range(1, 4).Select(i => Math.Max(1, (int)Math.Round(i * numLayers / 4.0))).ToArray();

    /// <summary>A from-scratch configuration suited to the data (grid of 8×8 to 16×16 patches, small width).</summary>
    public static BeitConfig DefaultConfig(BeitSegmentationImages train, Options o)
    {
        int size = o.ImageSize ?? Math.Min(train.Height, train.Width);
        int patch = size <= 64 ? 8 : 16;
        const int layers = 4;
        return new BeitConfig
        {
            ImageSize = size,
            PatchSize = patch,
            HiddenSize = 64,
            NumHiddenLayers = layers,
            NumAttentionHeads = 2,
            IntermediateSize = 128,
            UseRelativePositionBias = true,
            OutIndices = DefaultOutIndices(layers),
            AuxiliaryChannels = 32,
            LayerNormEps = 1e-6,
            DropPathRate = o.DropPathRate,
        };
    }
}
