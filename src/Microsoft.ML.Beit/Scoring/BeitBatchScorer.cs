using System.Threading.Channels;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>Options of <see cref="BeitBatchScorer"/>.</summary>
public sealed class BeitBatchScorerOptions
{
    /// <summary>Images per ONNX Runtime run (default 1). Results do not depend on it beyond float rounding.</summary>
    public int BatchSize { get; set; } = 1;

    /// <summary>Images decoded and preprocessed at once while the model runs (default: half the cores, at least 1).</summary>
    public int DecodeThreads { get; set; } = Math.Max(1, Environment.ProcessorCount / 2);

    /// <summary>Batches prepared ahead of the model (default 2): the memory bound is about <c>(PrefetchBatches + 1)·BatchSize</c> images.</summary>
    public int PrefetchBatches { get; set; } = 2;

    /// <summary>ONNX Runtime threads inside one operator; null lets ONNX Runtime choose.</summary>
    public int? IntraOpNumThreads { get; set; }

    /// <summary>CUDA device to score on (needs the Microsoft.ML.OnnxRuntime.Gpu package and CUDA); null scores on the CPU.</summary>
    public int? GpuDeviceId { get; set; }

    /// <summary>Segmentation: keep each decoded image in its result (for overlays; default true).</summary>
    public bool KeepImages { get; set; } = true;
}

/// <summary>A model resolved for scoring: the stage's ONNX graph (flattened pixel input, internal output names) and its configuration.</summary>
internal sealed record BeitScoringModel(byte[] Onnx, BeitScoringTask Task, BeitStageConfig Load, BeitImageProcessor Processor, BeitStageConfig Model)
{
    /// <summary>The graph's output: its name and values per image.</summary>
    public (string Name, int Length) Output => Task switch
    {
        BeitScoringTask.ImageClassification => (BeitColumns.Probabilities, Model.Labels!.Length),
        BeitScoringTask.Features => (BeitColumns.Pooled, Model.HiddenSize),
        _ => (BeitColumns.Logits, checked(Model.Labels!.Length * Model.LogitsHeight * Model.LogitsWidth)),
    };
}

/// <summary>One image's result from <see cref="BeitBatchScorer.Score"/>: the model's output, or why the image could not be scored.</summary>
public sealed class BeitBatchResult
{
    internal BeitBatchResult(string source) => Source = source;

    /// <summary>The image path, as given.</summary>
    public string Source { get; }

    /// <summary>Why the image was not scored (it could not be read or decoded), or null.</summary>
    public string? Error { get; internal set; }

    /// <summary>Classification: the class probabilities, by class index.</summary>
    public float[]? Probabilities { get; internal set; }

    /// <summary>Features: the pooled embedding.</summary>
    public float[]? Features { get; internal set; }

    /// <summary>Segmentation: one class index per pixel at the image's size, row-major (see <see cref="BeitSegmentationRendering"/>).</summary>
    public int[]? LabelMap { get; internal set; }

    /// <summary>Segmentation: the label map's size (the decoded image's).</summary>
    public PixelSize LabelMapSize { get; internal set; }

    /// <summary>Segmentation with <see cref="BeitBatchScorerOptions.KeepImages"/>: the decoded image (for overlays).</summary>
    public RgbImage? Image { get; internal set; }
}

/// <summary>
/// Scores a stream of image files with a BEiT model (a <c>model.zip</c> made by <c>beit package</c>, or a checkpoint
/// folder) at the speed of ONNX Runtime itself: files are decoded and preprocessed in parallel on worker threads,
/// a bounded number of batches ahead, while the model runs whole batches on one session of the very graph the ML.NET
/// pipeline runs. Results come back lazily and in input order, so a million paths need constant memory.
/// </summary>
public sealed class BeitBatchScorer : IDisposable
{
    /// <summary>The text column the packaged pipelines read (named in per-image error messages).</summary>
    internal const string PathColumn = "ImagePath";

    private readonly InferenceSession _session;
    private readonly BeitBatchScorerOptions _options;
    private readonly BeitStageConfig _load;
    private readonly BeitStageConfig _model;
    private readonly string _output;
    private readonly int _outputLength;

    private BeitBatchScorer(BeitScoringModel resolved, BeitBatchScorerOptions? options)
    {
        var (onnx, task, load, processor, model) = resolved;
        _options = options ?? new BeitBatchScorerOptions();
        if (_options.BatchSize < 1 || _options.BatchSize > 4096) throw new ArgumentOutOfRangeException(nameof(options), _options.BatchSize, "BatchSize must be 1 to 4096.");
        if (_options.DecodeThreads < 1) throw new ArgumentOutOfRangeException(nameof(options), _options.DecodeThreads, "DecodeThreads must be at least 1.");
        if (_options.PrefetchBatches < 1) throw new ArgumentOutOfRangeException(nameof(options), _options.PrefetchBatches, "PrefetchBatches must be at least 1.");
        Task = task;
        _load = load;
        _model = model;
        Processor = processor;
        (_output, _outputLength) = resolved.Output;
        using var sessionOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        if (_options.IntraOpNumThreads is int threads) sessionOptions.IntraOpNumThreads = threads;
        if (_options.GpuDeviceId is int device) sessionOptions.AppendExecutionProvider_CUDA(device);
        _session = new InferenceSession(onnx, sessionOptions);
    }

    /// <summary>
    /// Opens a model: a <c>model.zip</c> saved from a <c>LoadBeitImages → BeitImageProcessor → BeitClassifier |
    /// BeitFeaturizer | BeitSegmenter</c> pipeline (what <c>beit package</c> writes), or a Hugging Face checkpoint folder
    /// (by its <c>architectures</c>: a segmentation checkpoint segments, a classification one classifies, any other gives features).
    /// </summary>
    /// <exception cref="FileNotFoundException">The path does not exist.</exception>
    /// <exception cref="NotSupportedException">The model.zip is some other ML.NET pipeline (no BEiT stages).</exception>
    public static BeitBatchScorer Load(string model, BeitBatchScorerOptions? options = null) => new(Resolve(model), options);

    /// <summary>A scorer over an already resolved model (benchmarks build one in memory).</summary>
    internal static BeitBatchScorer Create(BeitScoringModel model, BeitBatchScorerOptions? options) => new(model, options);

    private static (byte[], BeitStageConfig) Graph<T>(BeitModelStageEstimator<T> stage) where T : BeitModelStageTransformer => (stage.OnnxModel, stage.StageConfig);

    /// <summary>The graph, task, decoding, preprocessing and model configuration of a model.zip or checkpoint folder (see <see cref="Load"/>).</summary>
    internal static BeitScoringModel Resolve(string model)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        var ml = new MLContext();
        if (Directory.Exists(model))
        {
            var processor = BeitImageProcessorEstimator.LoadProcessor(model);
            var load = new BeitStageConfig { Stage = BeitStages.LoadImages, Column = PathColumn };
            var task = BeitScoringTasks.ForCheckpoint(BeitConfig.Load(model));
            (byte[] onnx, BeitStageConfig stage) = task switch
            {
                BeitScoringTask.SemanticSegmentation => Graph(ml.Transforms.BeitSegmenter(new BeitSegmenterEstimator.Options { Model = model })),
                BeitScoringTask.ImageClassification => Graph(ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = model })),
                _ => Graph(ml.Transforms.BeitFeaturizer(new BeitFeaturizerEstimator.Options { Model = model })),
            };
            return new(onnx, task, load, processor, stage);
        }
        if (!File.Exists(model)) throw new FileNotFoundException($"Model '{model}' does not exist (expected a model.zip or a checkpoint folder).", model);
        var loaded = BeitModelZip.Load(ml, model, out _);
        try
        {
            BeitStageConfig loadStage;
            BeitImageProcessor processor;
            try
            {
                loadStage = LoadBeitImagesTransformer.FromLoaded(loaded).StageConfig;
                processor = BeitImageProcessorTransformer.FromLoaded(loaded).Processor;
            }
            catch (ArgumentException e)
            {
                throw new NotSupportedException($"'{model}' is not a BEiT pipeline (LoadBeitImages → BeitImageProcessor → a BEiT model stage): {e.Message}", e);
            }
            var (task, stage) = FindModelStage(loaded)
                ?? throw new NotSupportedException($"'{model}' is not a BEiT pipeline: it holds no BeitClassifier, BeitFeaturizer or BeitSegmenter stage.");
            return new(BeitModelZip.ReadOnnxModel(model), task, loadStage, processor, stage);
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    private static (BeitScoringTask, BeitStageConfig)? FindModelStage(ITransformer loaded) => BeitScoringTasks.Find(loaded);

    /// <summary>What the model outputs.</summary>
    public BeitScoringTask Task { get; }

    /// <summary>Class names by index (classification and segmentation; empty for features).</summary>
    public IReadOnlyList<string> LabelNames => _model.Labels ?? [];

    /// <summary>The preprocessing the model was packaged with.</summary>
    public BeitImageProcessor Processor { get; }

    /// <summary>The model's input size.</summary>
    public PixelSize InputSize => new(_model.Height, _model.Width);

    /// <summary>The embedding width (features).</summary>
    public int FeatureSize => _model.HiddenSize;

    /// <summary>Images per ONNX Runtime run.</summary>
    public int BatchSize => _options.BatchSize;

    /// <summary>
    /// Scores <paramref name="paths"/> lazily, in order: the sequence is enumerated once, on a background thread, at most
    /// a few batches ahead of the results consumed. A file that cannot be read or decoded gives a result with
    /// <see cref="BeitBatchResult.Error"/>; the other images of its batch are scored as usual.
    /// </summary>
    public IEnumerable<BeitBatchResult> Score(IEnumerable<string> paths, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return ScoreIterator(paths, cancellationToken);
    }

    private IEnumerable<BeitBatchResult> ScoreIterator(IEnumerable<string> paths, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateBounded<Task<Prepared[]>>(new BoundedChannelOptions(_options.PrefetchBatches) { SingleReader = true, SingleWriter = true });
        // Limits decoding across the prepared batches, so the model's threads keep their cores.
        // Not disposed: a cancelled batch's last decode may still release it (SemaphoreSlim holds no handle unless asked).
        var decodeSlots = new SemaphoreSlim(_options.DecodeThreads);
        var producer = System.Threading.Tasks.Task.Run(async () =>
        {
            try
            {
                foreach (var batch in paths.Chunk(_options.BatchSize))
                {
                    cts.Token.ThrowIfCancellationRequested();
                    await channel.Writer.WriteAsync(Prepare(batch, decodeSlots, cts.Token), cts.Token).ConfigureAwait(false);
                }
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        });
        try
        {
            while (channel.Reader.WaitToReadAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult())
            {
                while (channel.Reader.TryRead(out var next))
                {
                    var prepared = next.GetAwaiter().GetResult();
                    cancellationToken.ThrowIfCancellationRequested();
                    foreach (var result in Run(prepared)) yield return result;
                }
            }
        }
        finally
        {
            cts.Cancel();
            // Drain so no prepared batch outlives the scorer's semaphore.
            while (channel.Reader.TryRead(out var pending))
                try { pending.Wait(); } catch (AggregateException) { }
            try { producer.Wait(); } catch (AggregateException) { }
        }
    }

    /// <summary>One decoded, preprocessed image, or its error.</summary>
    private sealed record Prepared(string Source, float[]? Pixels, RgbImage? Image, string? Error);

    private Task<Prepared[]> Prepare(string[] batch, SemaphoreSlim slots, CancellationToken token)
    {
        var tasks = batch.Select(path => System.Threading.Tasks.Task.Run(async () =>
        {
            await slots.WaitAsync(token).ConfigureAwait(false);
            try
            {
                return PrepareOne(path);
            }
            finally
            {
                slots.Release();
            }
        }, token)).ToArray();
        return System.Threading.Tasks.Task.WhenAll(tasks);
    }

    private Prepared PrepareOne(string path)
    {
        RgbImage image;
        try
        {
            image = ImageLoading.FromFile(_load, path);
        }
        catch (BeitInputException e)
        {
            return new Prepared(path, null, null, e.Message);
        }
        var size = Processor.GetOutputSize(image.Size);
        if (size.Height != _model.Height || size.Width != _model.Width)
            return new Prepared(path, null, null, $"Column '{_load.Column}' ('{path}'): the processor makes a {size} input but the model takes {InputSize}.");
        var pixels = Processor.Preprocess(image);
        return new Prepared(path, pixels, Task == BeitScoringTask.SemanticSegmentation ? image : null, null);
    }

    /// <summary>Runs the model on the batch's good images; a failed run falls back to one image at a time so only the bad one is lost.</summary>
    private BeitBatchResult[] Run(Prepared[] batch)
    {
        var results = batch.Select(p => new BeitBatchResult(p.Source) { Error = p.Error }).ToArray();
        var good = Enumerable.Range(0, batch.Length).Where(i => batch[i].Pixels != null).ToArray();
        if (good.Length == 0) return results;
        try
        {
            Fill(results, batch, good);
        }
        catch (OnnxRuntimeException) when (good.Length > 1)
        {
            foreach (int i in good)
            {
                try
                {
                    Fill(results, batch, [i]);
                }
                catch (OnnxRuntimeException e)
                {
                    results[i].Error = $"Column '{_load.Column}' ('{batch[i].Source}'): the model failed: {e.Message}";
                }
            }
        }
        return results;
    }

    private void Fill(BeitBatchResult[] results, Prepared[] batch, int[] rows)
    {
        var output = RunTensor(rows.Select(i => batch[i].Pixels!).ToArray());
        for (int k = 0; k < rows.Length; k++)
        {
            var r = results[rows[k]];
            var values = output.AsSpan(k * _outputLength, _outputLength);
            switch (Task)
            {
                case BeitScoringTask.ImageClassification:
                    r.Probabilities = values.ToArray();
                    break;
                case BeitScoringTask.Features:
                    r.Features = values.ToArray();
                    break;
                default:
                    var image = batch[rows[k]].Image!;
                    r.LabelMap = SemanticSegmentationPostProcessor.Process(values, 1, _model.Labels!.Length, _model.LogitsHeight, _model.LogitsWidth, [(image.Height, image.Width)])[0];
                    r.LabelMapSize = new PixelSize(image.Height, image.Width);
                    if (_options.KeepImages) r.Image = image;
                    break;
            }
        }
    }

    /// <summary>One ONNX Runtime run over preprocessed images (<c>[C, H, W]</c> each); the outputs, concatenated.</summary>
    internal float[] RunTensor(IReadOnlyList<float[]> images)
    {
        int length = _model.InputLength, n = images.Count;
        var input = new float[checked(n * length)];
        for (int i = 0; i < n; i++) images[i].AsSpan().CopyTo(input.AsSpan(i * length, length));
        using var value = OrtValue.CreateTensorValueFromMemory(input, [n, length]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, [BeitColumns.PixelValues], [value], [_output]);
        var data = outputs[0].GetTensorDataAsSpan<float>();
        if (data.Length != (long)n * _outputLength)
            throw new InvalidDataException($"The model produced {data.Length} values for {n} images; {n}·{_outputLength} were expected.");
        return data.ToArray();
    }

    /// <summary>Releases the ONNX Runtime session.</summary>
    public void Dispose() => _session.Dispose();
}
