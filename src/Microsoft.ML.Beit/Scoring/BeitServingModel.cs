using System.IO.Compression;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>Options of <see cref="BeitServingModel"/>.</summary>
public sealed class BeitServingOptions
{
    /// <summary>How many requests run the model at the same time (default: the processor count); more wait their turn.</summary>
    public int MaxConcurrency { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// 1 (the default): each request runs alone. Above 1: requests that arrive within <see cref="BatchWindow"/> of each
    /// other are scored together, up to this many, as one <c>IDataView</c>.
    /// </summary>
    public int MaxBatch { get; set; } = 1;

    /// <summary>How long the first request of a batch waits for others (default 2 ms).</summary>
    public TimeSpan BatchWindow { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>The largest encoded image accepted, in bytes (default 32 MiB); the decoder's file-size limit too.</summary>
    public long MaxImageBytes { get; set; } = 32L << 20;

    /// <summary>The most pixels an image may decode to (default: the decoder's, as Pillow's).</summary>
    public long MaxPixels { get; set; } = ImageDecoderOptions.DefaultMaxPixels;
}

/// <summary>One segmentation result: the class of each pixel at the image's size, and the decoded image.</summary>
/// <param name="Labels">Class index per pixel, row-major.</param>
/// <param name="Size">The map's (height, width): the image's own size.</param>
/// <param name="Image">The decoded image (for overlays).</param>
public sealed record BeitSegmentation(int[] Labels, PixelSize Size, RgbImage Image);

/// <summary>
/// A model served to many concurrent callers from encoded image bytes: a <c>model.zip</c> made by <c>beit package</c>
/// (or any saved pipeline whose first BEiT stage is <c>LoadBeitImages</c>), or a checkpoint folder. The zip's
/// path-reading <c>LoadBeitImages</c> stage is swapped for the same stage reading bytes (same decoder settings), so a
/// request is scored exactly as <c>beit predict</c> scores the file. Predictions run on a
/// <see cref="BeitPredictionEnginePool{TInput, TOutput}"/> (engines never own the model), at most
/// <see cref="BeitServingOptions.MaxConcurrency"/> at a time; optional micro-batching groups concurrent requests.
/// Thread-safe. Dispose it after the last request: it disposes the model it loaded.
/// </summary>
public sealed class BeitServingModel : IDisposable
{
    /// <summary>The byte column the served pipeline reads.</summary>
    internal const string BytesColumn = "__beit_serving_bytes";

    private readonly MLContext _ml;
    private readonly ITransformer _owned;          // the loaded or fitted model: disposed last
    private readonly IDisposable? _bytesLoader;    // the swapped-in byte loader, when the zip's loader was replaced
    private readonly ITransformer _served;         // bytes → outputs (never disposed itself: its parts are owned above)
    private readonly BeitServingOptions _options;
    private readonly SemaphoreSlim _slots;
    private readonly string _scoreColumn, _featuresColumn, _mapColumn, _imageColumn;
    private readonly IDisposable? _pool;
    private readonly Channel<Pending>? _queue;
    private readonly Task? _batcher;
    private volatile bool _disposed;

    /// <summary>The task the model performs.</summary>
    public BeitScoringTask Task { get; }

    /// <summary>Class names (classification, segmentation); empty for features.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>The model's input (height, width).</summary>
    public PixelSize InputSize { get; }

    /// <summary>The ONNX graph's precision (<see cref="BeitOnnxPrecision"/> name), e.g. <c>Float32</c> or <c>Int8</c>.</summary>
    public string Precision { get; }

    /// <summary>The embedding width (features); 0 otherwise.</summary>
    public int FeatureSize { get; }

    /// <summary>Where the model came from.</summary>
    public string Source { get; }

    /// <summary>The options it serves with.</summary>
    public BeitServingOptions Options => _options;

    private BeitServingModel(MLContext ml, string source, ITransformer owned, IDisposable? bytesLoader, ITransformer served,
        BeitScoringTask task, BeitStageConfig stage, string loaderOutput, string precision, BeitServingOptions options)
    {
        _ml = ml;
        Source = source;
        _owned = owned;
        _bytesLoader = bytesLoader;
        _served = served;
        _options = options;
        Task = task;
        Labels = stage.Labels ?? [];
        InputSize = new PixelSize(stage.Height, stage.Width);
        FeatureSize = task == BeitScoringTask.Features ? stage.HiddenSize : 0;
        Precision = precision;
        _scoreColumn = "Score";
        _featuresColumn = stage.Output;
        _mapColumn = stage.Output;
        _imageColumn = loaderOutput;
        _slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        var schema = served.GetOutputSchema(EmptyBytes(ml).Schema);
        switch (task)
        {
            case BeitScoringTask.ImageClassification:
                Require(schema, _scoreColumn, "the Score vector of probabilities");
                _pool = new BeitPredictionEnginePool<BytesRow, ScoreRow>(ml, served, options.MaxConcurrency, InputDefinition(), OutputDefinition(_scoreColumn));
                break;
            case BeitScoringTask.Features:
                Require(schema, _featuresColumn, "the Features vector");
                _pool = new BeitPredictionEnginePool<BytesRow, ScoreRow>(ml, served, options.MaxConcurrency, InputDefinition(), OutputDefinition(_featuresColumn));
                break;
            default:
                Require(schema, _mapColumn, "the label map");
                Require(schema, _imageColumn, "the decoded image");
                _pool = new BeitPredictionEnginePool<BytesRow, MapRow>(ml, served, options.MaxConcurrency, InputDefinition(), MapDefinition());
                break;
        }
        if (options.MaxBatch > 1)
        {
            _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = false });
            // One batcher per concurrency slot, so batching never lowers the parallelism of single requests.
            _batcher = System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, options.MaxConcurrency).Select(_ => System.Threading.Tasks.Task.Run(BatchLoop)));
        }
    }

    /// <summary>Loads a model for serving.</summary>
    /// <param name="path">A <c>model.zip</c> (checked by <see cref="BeitModelZip"/>) or a checkpoint folder.</param>
    /// <param name="options">Serving options (null: defaults).</param>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The model cannot be served; the message says why.</exception>
    public static BeitServingModel Load(string path, BeitServingOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new BeitServingOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrency, 1, nameof(options.MaxConcurrency));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatch, 1, nameof(options.MaxBatch));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxBatch, 1024, nameof(options.MaxBatch));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxImageBytes, 1, nameof(options.MaxImageBytes));
        if (options.BatchWindow < TimeSpan.Zero || options.BatchWindow > TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(options), "BatchWindow must be between 0 and 1 s.");
        var decoder = new ImageDecoderOptions { MaxFileBytes = options.MaxImageBytes, MaxPixels = options.MaxPixels };
        var ml = new MLContext();
        var empty = EmptyBytes(ml);
        if (Directory.Exists(path)) return FromCheckpoint(ml, path, empty, decoder, options);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model '{path}' does not exist (expected a model.zip or a checkpoint folder).", path);

        var loaded = BeitModelZip.Load(ml, path, out _);
        try
        {
            var (task, stage) = FindTask(loaded) ?? throw new InvalidDataException(
                $"Model '{path}' has no BeitClassifier, BeitFeaturizer or BeitSegmenter stage; 'beit serve' serves models made by 'beit package'.");
            if (loaded is not TransformerChain<ITransformer> chain)
                throw new InvalidDataException($"Model '{path}' is not a transformer chain; 'beit serve' serves models made by 'beit package'.");
            var parts = chain.ToList();
            int index = parts.FindIndex(IsLoader);
            if (index < 0)
                throw new InvalidDataException($"Model '{path}' has no LoadBeitImages stage at its top level; 'beit serve' needs one to feed it image bytes.");
            var zipLoader = LoadBeitImagesTransformer.FromLoaded(parts[index]);
            // The same stage reading bytes, with the zip's settings except the size limits, which serving sets.
            var bytesLoader = ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options
            {
                InputColumnName = BytesColumn,
                OutputColumnName = zipLoader.OutputColumnName,
                DecoderOptions = decoder with { ApplyExifOrientation = zipLoader.DecoderOptions.ApplyExifOrientation },
            }).Fit(empty);
            parts[index] = bytesLoader;
            var served = new TransformerChain<ITransformer>(parts.ToArray());
            try
            {
                return new BeitServingModel(ml, path, loaded, bytesLoader, served, task, stage, zipLoader.OutputColumnName, ReadPrecision(path), options);
            }
            catch
            {
                bytesLoader.Dispose();
                throw;
            }
        }
        catch
        {
            (loaded as IDisposable)?.Dispose();
            throw;
        }
    }

    private static bool IsLoader(ITransformer part)
    {
        try
        {
            LoadBeitImagesTransformer.FromLoaded(part);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static (BeitScoringTask, BeitStageConfig)? FindTask(ITransformer model) => BeitScoringTasks.Find(model);

    private static BeitServingModel FromCheckpoint(MLContext ml, string folder, IDataView empty, ImageDecoderOptions decoder, BeitServingOptions options)
    {
        // The pipeline 'beit package' saves, reading the request's bytes instead of a path.
        var task = BeitScoringTasks.ForCheckpoint(BeitConfig.Load(folder));
        var pipeline = new BeitPipelines.Options { Input = BeitPipelines.ImageInput.Bytes, InputColumnName = BytesColumn, DecoderOptions = decoder };
        ITransformer fitted = BeitPipelines.CreateEstimator(ml, BeitModelSource.FromPath(folder), BeitScoringTasks.OnnxTask(task), pipeline).Fit(empty);
        var stage = BeitScoringTasks.Find(fitted)!.Value.Config;
        try
        {
            return new BeitServingModel(ml, folder, fitted, null, fitted, task, stage, BeitPipelines.ImageColumn, nameof(BeitOnnxPrecision.Float32), options);
        }
        catch
        {
            (fitted as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The <c>beit.precision</c> metadata of the zip's first embedded ONNX graph, read field by field so the graph
    /// itself (field 7) is skipped, not parsed; "Float32" when absent (graphs exported before the key existed).
    /// </summary>
    private static string ReadPrecision(string path)
    {
        var entries = BeitModelZip.Validate(path);
        if (entries.Count == 0) return nameof(BeitOnnxPrecision.Float32);
        using var file = File.OpenRead(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Read);
        using var stream = zip.GetEntry(entries[0])!.Open();
        Span<byte> prefix = stackalloc byte[4];
        stream.ReadExactly(prefix); // ML.NET's int32 length prefix
        using var input = new CodedInputStream(stream, leaveOpen: true);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) != 14 || WireFormat.GetTagWireType(tag) != WireFormat.WireType.LengthDelimited)
            {
                input.SkipLastField();
                continue;
            }
            var entry = Onnx.Proto.StringStringEntryProto.Parser.ParseFrom(input.ReadBytes());
            if (entry.Key == BeitOnnxNames.MetadataPrecision) return entry.Value;
        }
        return nameof(BeitOnnxPrecision.Float32);
    }

    // ---------------------------------------------------------------- requests

    /// <summary>Class probabilities, by label index.</summary>
    /// <exception cref="BeitInputException">The bytes are not a decodable image within the limits.</exception>
    /// <exception cref="InvalidOperationException">The model is not a classifier.</exception>
    public async Task<float[]> ClassifyAsync(byte[] image, CancellationToken cancellationToken = default)
    {
        Expect(BeitScoringTask.ImageClassification);
        return ((ScoreRow)await RunAsync(image, cancellationToken).ConfigureAwait(false)).Values;
    }

    /// <summary>The embedding.</summary>
    /// <exception cref="BeitInputException">The bytes are not a decodable image within the limits.</exception>
    /// <exception cref="InvalidOperationException">The model is not a featurizer.</exception>
    public async Task<float[]> FeaturesAsync(byte[] image, CancellationToken cancellationToken = default)
    {
        Expect(BeitScoringTask.Features);
        return ((ScoreRow)await RunAsync(image, cancellationToken).ConfigureAwait(false)).Values;
    }

    /// <summary>The class of each pixel, at the image's size.</summary>
    /// <exception cref="BeitInputException">The bytes are not a decodable image within the limits.</exception>
    /// <exception cref="InvalidOperationException">The model is not a segmenter.</exception>
    public async Task<BeitSegmentation> SegmentAsync(byte[] image, CancellationToken cancellationToken = default)
    {
        Expect(BeitScoringTask.SemanticSegmentation);
        var row = (MapRow)await RunAsync(image, cancellationToken).ConfigureAwait(false);
        var decoded = BeitImageColumn.Decode(row.Image);
        var size = new PixelSize(decoded.Height, decoded.Width);
        if (row.Map.Length != (long)size.Height * size.Width) size = InputSize; // a map at the model's input size
        return new BeitSegmentation(row.Map, size, decoded);
    }

    private void Expect(BeitScoringTask task)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Task != task) throw new InvalidOperationException($"This is a {Name(Task)} model; it does not do {Name(task)}.");
    }

    /// <summary>The task's name as <c>beit package --task</c> spells it.</summary>
    public static string Name(BeitScoringTask task) => task switch
    {
        BeitScoringTask.ImageClassification => "image-classification",
        BeitScoringTask.SemanticSegmentation => "semantic-segmentation",
        _ => "features",
    };

    private async Task<object> RunAsync(byte[] image, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.LongLength > _options.MaxImageBytes)
            throw new BeitInputException(BytesColumn, null, null, $"the image has {image.LongLength:N0} bytes, more than the limit of {_options.MaxImageBytes:N0}.");
        if (_queue != null)
        {
            var pending = new Pending(image);
            await _queue.Writer.WriteAsync(pending, ct).ConfigureAwait(false);
            return await pending.Result.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return PredictOne(image);
        }
        finally
        {
            _slots.Release();
        }
    }

    private object PredictOne(byte[] image)
    {
        try
        {
            return _pool switch
            {
                BeitPredictionEnginePool<BytesRow, ScoreRow> p => p.Predict(new BytesRow { Bytes = image }),
                BeitPredictionEnginePool<BytesRow, MapRow> p => p.Predict(new BytesRow { Bytes = image }),
                _ => throw new InvalidOperationException("No engine pool."),
            };
        }
        catch (Exception e) when (Unwrap(e) is { } input)
        {
            throw input;
        }
    }

    /// <summary>ML.NET may wrap a stage's <see cref="BeitInputException"/>; callers get it bare.</summary>
    private static BeitInputException? Unwrap(Exception e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
            if (x is BeitInputException b) return b;
        return null;
    }

    // ---------------------------------------------------------------- micro-batching

    private sealed class Pending(byte[] image)
    {
        public byte[] Image { get; } = image;
        public TaskCompletionSource<object> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private async Task BatchLoop()
    {
        var reader = _queue!.Reader;
        var batch = new List<Pending>(_options.MaxBatch);
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            if (!reader.TryRead(out var first)) continue;
            batch.Add(first);
            // Wait a few milliseconds for company, never past the window, never beyond MaxBatch.
            var deadline = DateTime.UtcNow + _options.BatchWindow;
            while (batch.Count < _options.MaxBatch)
            {
                if (reader.TryRead(out var next))
                {
                    batch.Add(next);
                    continue;
                }
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                using var timeout = new CancellationTokenSource(left);
                try
                {
                    if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) break;
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            ScoreBatch(batch);
        }
    }

    private void ScoreBatch(List<Pending> batch)
    {
        if (batch.Count == 1)
        {
            Complete(batch[0], () => PredictOne(batch[0].Image));
            return;
        }
        try
        {
            var results = TransformMany(batch.Select(p => p.Image).ToList());
            for (int i = 0; i < batch.Count; i++) batch[i].Result.TrySetResult(results[i]);
        }
        catch (Exception)
        {
            // One bad image fails a whole IDataView pass: score each alone, so only the bad one fails.
            foreach (var p in batch) Complete(p, () => PredictOne(p.Image));
        }
    }

    private static void Complete(Pending p, Func<object> score)
    {
        try
        {
            p.Result.TrySetResult(score());
        }
        catch (Exception e)
        {
            p.Result.TrySetException(e);
        }
    }

    /// <summary>One pass of the served pipeline over many rows.</summary>
    private List<object> TransformMany(List<byte[]> images)
    {
        var input = _ml.Data.LoadFromEnumerable(images.Select(b => new BytesRow { Bytes = b }), InputDefinition());
        var output = _served.Transform(input);
        var result = new List<object>(images.Count);
        if (Task == BeitScoringTask.SemanticSegmentation)
        {
            foreach (var row in _ml.Data.CreateEnumerable<MapRow>(output, reuseRowObject: false,
                schemaDefinition: MapDefinition()))
                result.Add(row);
        }
        else
        {
            string column = Task == BeitScoringTask.ImageClassification ? _scoreColumn : _featuresColumn;
            foreach (var row in _ml.Data.CreateEnumerable<ScoreRow>(output, reuseRowObject: false, schemaDefinition: OutputDefinition(column)))
                result.Add(row);
        }
        return result;
    }

    // ---------------------------------------------------------------- rows

    /// <summary>The request row: encoded image bytes.</summary>
    internal sealed class BytesRow
    {
        /// <summary>The encoded image.</summary>
        [VectorType]
        public byte[] Bytes { get; set; } = [];
    }

    /// <summary>A float vector output (scores or features).</summary>
    internal sealed class ScoreRow
    {
        /// <summary>The values.</summary>
        public float[] Values { get; set; } = [];
    }

    /// <summary>A label map and the decoded image it belongs to.</summary>
    internal sealed class MapRow
    {
        /// <summary>Class per pixel, row-major.</summary>
        public int[] Map { get; set; } = [];

        /// <summary>The decoded image column (<see cref="BeitImageColumn"/>).</summary>
        public byte[] Image { get; set; } = [];
    }

    private static SchemaDefinition InputDefinition()
    {
        var definition = SchemaDefinition.Create(typeof(BytesRow));
        definition[nameof(BytesRow.Bytes)].ColumnName = BytesColumn;
        return definition;
    }

    private static SchemaDefinition OutputDefinition(string column)
    {
        var definition = SchemaDefinition.Create(typeof(ScoreRow), SchemaDefinition.Direction.Write);
        definition[nameof(ScoreRow.Values)].ColumnName = column;
        return definition;
    }

    private SchemaDefinition MapDefinition()
    {
        var definition = SchemaDefinition.Create(typeof(MapRow), SchemaDefinition.Direction.Write);
        definition[nameof(MapRow.Map)].ColumnName = _mapColumn;
        definition[nameof(MapRow.Image)].ColumnName = _imageColumn;
        return definition;
    }

    private static DataViewSchema.Column Require(DataViewSchema schema, string column, string what) =>
        schema.GetColumnOrNull(column) ?? throw new InvalidDataException($"The model has no '{column}' column ({what}); 'beit serve' serves models made by 'beit package'.");

    private static IDataView EmptyBytes(MLContext ml) => ml.Data.LoadFromEnumerable(Array.Empty<BytesRow>(), InputDefinition());

    /// <summary>Stops taking requests, waits for the batchers, then disposes the pool and the model.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _queue?.Writer.TryComplete();
        try
        {
            _batcher?.Wait(TimeSpan.FromSeconds(30));
        }
        catch (AggregateException)
        {
        }
        // Wait for requests inside the model before disposing it.
        for (int i = 0; i < _options.MaxConcurrency; i++) _slots.Wait(TimeSpan.FromSeconds(30));
        _pool?.Dispose();
        _bytesLoader?.Dispose();
        (_owned as IDisposable)?.Dispose();
    }
}

