using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>
/// An ONNX Runtime session over an exported BEiT graph: thread and optimisation settings, execution-provider choice
/// with an explicit CUDA fallback rule, and batched runs over <c>float[]</c> pixel batches. Every native value
/// (<see cref="OrtValue"/>) of a run is disposed before the run returns; results are managed copies.
/// </summary>
/// <remarks>A session may be used from several threads at once (ONNX Runtime sessions are thread-safe for Run).</remarks>
public sealed class BeitOnnxSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly SessionOptions _sessionOptions;
    private readonly string[] _outputNames;
    private bool _disposed;

    /// <summary>Loads an ONNX file.</summary>
    public BeitOnnxSession(string modelPath, BeitOnnxSessionOptions? options = null)
        : this(options, so => new InferenceSession(string.IsNullOrEmpty(modelPath) ? throw new ArgumentException("The model path is empty.", nameof(modelPath)) : modelPath, so))
    {
    }

    /// <summary>Loads an ONNX model from memory (e.g. <see cref="BeitOnnxExporter.ExportToBytes(BeitConfig, IReadOnlyDictionary{string, TensorData}, BeitOnnxTask, BeitOnnxExportOptions?)"/>).</summary>
    public BeitOnnxSession(byte[] model, BeitOnnxSessionOptions? options = null)
        : this(options, so => new InferenceSession(model ?? throw new ArgumentNullException(nameof(model)), so))
    {
    }

    private BeitOnnxSession(BeitOnnxSessionOptions? options, Func<SessionOptions, InferenceSession> create)
    {
        BeitOnnxRuntime.EnsureAvailable(nameof(BeitOnnxSession));
        options ??= new BeitOnnxSessionOptions();
        var log = options.Log ?? (m => Trace.TraceWarning(m));
        (_session, _sessionOptions, ExecutionProvider) = CreateSession(options, create, log);
        try
        {
            if (!_session.InputMetadata.TryGetValue(BeitOnnxNames.PixelValues, out var pixels) || pixels.Dimensions.Length != 4)
                throw new InvalidDataException($"The model has no 4-D '{BeitOnnxNames.PixelValues}' input; is it a BEiT export?");
            NumChannels = pixels.Dimensions[1];
            ImageHeight = pixels.Dimensions[2];
            ImageWidth = pixels.Dimensions[3];
            if (NumChannels <= 0 || ImageHeight <= 0 || ImageWidth <= 0)
                throw new InvalidDataException($"The model's '{BeitOnnxNames.PixelValues}' input must have fixed channels, height and width.");
            if (_session.InputMetadata.TryGetValue(BeitOnnxNames.BoolMaskedPos, out var mask)) NumPatches = mask.Dimensions[1];
            _outputNames = _session.OutputNames.ToArray();
            Metadata = new Dictionary<string, string>(_session.ModelMetadata.CustomMetadataMap);
            // ONNX Runtime's CPU provider has float16 kernels for few of the graph's operators and would wrap the rest in
            // Casts, running slower than float32: refuse rather than be silently slow.
            if (ExecutionProvider == CpuProvider && Metadata.TryGetValue(BeitOnnxNames.MetadataPrecision, out var precision)
                && precision == nameof(BeitOnnxPrecision.Float16))
                throw new NotSupportedException("BeitOnnxSession: this is a Float16 graph, which is for the CUDA execution provider; on the CPU " +
                    "export it with Precision Float32 or Int8 (Int8 is the fastest there).");
        }
        catch
        {
            _session.Dispose();
            _sessionOptions.Dispose();
            throw;
        }
    }

    /// <summary>The ONNX Runtime execution provider the session actually runs on (after any fallback): <c>CPUExecutionProvider</c> or <c>CUDAExecutionProvider</c>.</summary>
    public string ExecutionProvider { get; }
    /// <summary>Input channels.</summary>
    public int NumChannels { get; }
    /// <summary>Input height the graph was exported for.</summary>
    public int ImageHeight { get; }
    /// <summary>Input width the graph was exported for.</summary>
    public int ImageWidth { get; }
    /// <summary>Patches per image when the graph takes <c>bool_masked_pos</c>, else null.</summary>
    public int? NumPatches { get; }
    /// <summary>The graph's output names.</summary>
    public IReadOnlyList<string> OutputNames => _outputNames;
    /// <summary>The model's metadata (see <see cref="BeitOnnxNames"/> for the keys the exporter writes).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Values in one image: channels × height × width.</summary>
    public int ImageLength => NumChannels * ImageHeight * ImageWidth;

    private const string CpuProvider = "CPUExecutionProvider";
    private const string CudaProvider = "CUDAExecutionProvider";

    private static (InferenceSession, SessionOptions, string) CreateSession(
        BeitOnnxSessionOptions options, Func<SessionOptions, InferenceSession> create, Action<string> log)
    {
        if (options.GpuDeviceId is not int device)
        {
            var (s, so) = Create(options, create, cuda: null);
            return (s, so, CpuProvider);
        }

        // ML.NET's rule: a GPU request fails loudly when CUDA cannot be used, unless FallbackToCpu (which says so).
        string[] available = OrtEnv.Instance().GetAvailableProviders();
        string why;
        if (!available.Contains(CudaProvider))
        {
            why = $"the loaded ONNX Runtime has no CUDA provider (available: {string.Join(", ", available)}); " +
                  "the application must reference Microsoft.ML.OnnxRuntime.Gpu instead of Microsoft.ML.OnnxRuntime";
        }
        else
        {
            try
            {
                var (s, so) = Create(options, create, cuda: device);
                return (s, so, CudaProvider);
            }
            catch (OnnxRuntimeException e)
            {
                why = $"CUDA device {device} could not be initialised: {e.Message}";
            }
        }
        if (!options.FallbackToCpu)
            throw new InvalidOperationException($"BeitOnnxSession: GPU device {device} was requested but {why} (set FallbackToCpu to run on the CPU instead).");
        log($"BeitOnnxSession: running on the CPU because {why}.");
        var (cpu, cpuOptions) = Create(options, create, cuda: null);
        return (cpu, cpuOptions, CpuProvider);
    }

    private static (InferenceSession, SessionOptions) Create(BeitOnnxSessionOptions options, Func<SessionOptions, InferenceSession> create, int? cuda)
    {
        var so = new SessionOptions { GraphOptimizationLevel = options.GraphOptimizationLevel, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        try
        {
            if (options.IntraOpNumThreads is int intra) so.IntraOpNumThreads = intra;
            if (options.InterOpNumThreads is int inter) so.InterOpNumThreads = inter;
            if (options.OptimizedModelFilePath != null) so.OptimizedModelFilePath = options.OptimizedModelFilePath;
            foreach (var (key, value) in options.ConfigEntries) so.AddSessionConfigEntry(key, value);
            if (cuda is int device) so.AppendExecutionProvider_CUDA(device);
            return (create(so), so);
        }
        catch
        {
            so.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs one batch. <paramref name="pixelValues"/> holds <paramref name="batchSize"/> images, <c>[B, C, H, W]</c> row-major;
    /// <paramref name="boolMaskedPos"/> (<c>[B, N]</c>) is required exactly when the graph takes it.
    /// </summary>
    /// <param name="pixelValues">The batch; used in place (pinned), not copied.</param>
    /// <param name="batchSize">Images in the batch.</param>
    /// <param name="boolMaskedPos">Masked patches for masked image modeling graphs.</param>
    /// <param name="outputNames">Outputs to fetch; null fetches all.</param>
    /// <returns>Each requested output by name, as a managed copy with its batch dimension.</returns>
    public IReadOnlyDictionary<string, TensorData> Run(float[] pixelValues, int batchSize, bool[]? boolMaskedPos = null, IReadOnlyCollection<string>? outputNames = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(pixelValues);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "The batch size must be positive.");
        if (pixelValues.LongLength != (long)batchSize * ImageLength)
            throw new ArgumentException(
                $"pixel_values must hold {batchSize}×{NumChannels}×{ImageHeight}×{ImageWidth} = {(long)batchSize * ImageLength} values, got {pixelValues.LongLength}.", nameof(pixelValues));
        if (NumPatches is int n)
        {
            if (boolMaskedPos == null) throw new ArgumentException("This graph needs bool_masked_pos.", nameof(boolMaskedPos));
            if (boolMaskedPos.LongLength != (long)batchSize * n)
                throw new ArgumentException($"bool_masked_pos must hold {batchSize}×{n} values, got {boolMaskedPos.LongLength}.", nameof(boolMaskedPos));
        }
        else if (boolMaskedPos != null)
        {
            throw new ArgumentException("This graph takes no bool_masked_pos.", nameof(boolMaskedPos));
        }
        var names = outputNames?.ToArray() ?? _outputNames;
        foreach (var name in names)
            if (Array.IndexOf(_outputNames, name) < 0) throw new ArgumentException($"The graph has no output '{name}'.", nameof(outputNames));

        var inputNames = new List<string> { BeitOnnxNames.PixelValues };
        var inputs = new List<OrtValue>(2);
        try
        {
            inputs.Add(OrtValue.CreateTensorValueFromMemory(pixelValues, [batchSize, NumChannels, ImageHeight, ImageWidth]));
            if (boolMaskedPos != null)
            {
                inputNames.Add(BeitOnnxNames.BoolMaskedPos);
                inputs.Add(OrtValue.CreateTensorValueFromMemory(boolMaskedPos, [batchSize, NumPatches!.Value]));
            }
            using var runOptions = new RunOptions();
            using var results = _session.Run(runOptions, inputNames, inputs, names);
            var output = new Dictionary<string, TensorData>(names.Length);
            int i = 0;
            foreach (var value in results) output[names[i++]] = Copy(value);
            return output;
        }
        finally
        {
            foreach (var v in inputs) v.Dispose();
        }
    }

    /// <summary>
    /// Scores many images in batches of at most <paramref name="batchSize"/>, yielding each image's outputs (batch
    /// dimension 1) in order. Each image is a <c>[C, H, W]</c> row-major <c>float[]</c>.
    /// </summary>
    public IEnumerable<IReadOnlyDictionary<string, TensorData>> RunBatches(IEnumerable<float[]> images, int batchSize, IEnumerable<bool[]>? boolMaskedPos = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "The batch size must be positive.");
        return Iterate();

        IEnumerable<IReadOnlyDictionary<string, TensorData>> Iterate()
        {
            using var maskEnum = boolMaskedPos?.GetEnumerator();
            var pending = new List<(float[] Image, bool[]? Mask)>(batchSize);
            foreach (var image in images)
            {
                bool[]? mask = null;
                if (maskEnum != null)
                {
                    if (!maskEnum.MoveNext()) throw new ArgumentException("Fewer bool_masked_pos entries than images.", nameof(boolMaskedPos));
                    mask = maskEnum.Current;
                }
                pending.Add((image, mask));
                if (pending.Count == batchSize)
                {
                    foreach (var r in RunPending(pending)) yield return r;
                    pending.Clear();
                }
            }
            if (pending.Count > 0)
                foreach (var r in RunPending(pending)) yield return r;
        }
    }

    private IEnumerable<IReadOnlyDictionary<string, TensorData>> RunPending(List<(float[] Image, bool[]? Mask)> pending)
    {
        int b = pending.Count, len = ImageLength;
        var batch = new float[(long)b * len];
        bool[]? masks = NumPatches is int n && pending[0].Mask != null ? new bool[b * n] : null;
        for (int i = 0; i < b; i++)
        {
            var (image, mask) = pending[i];
            if (image.Length != len) throw new ArgumentException($"Image {i} of the batch has {image.Length} values, expected {len}.");
            Array.Copy(image, 0, batch, (long)i * len, len);
            if (masks != null)
            {
                if (mask == null || mask.Length != NumPatches) throw new ArgumentException($"bool_masked_pos {i} of the batch must hold {NumPatches} values.");
                Array.Copy(mask, 0, masks, i * NumPatches!.Value, NumPatches.Value);
            }
        }
        var outputs = Run(batch, b, masks);
        for (int i = 0; i < b; i++)
            yield return outputs.ToDictionary(kv => kv.Key, kv => Slice(kv.Value, i));
    }

    private static TensorData Copy(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        long[] shape = info.Shape;
        return info.ElementDataType switch
        {
            TensorElementType.Float => new TensorData(TensorDType.F32, shape, MemoryMarshal.AsBytes(value.GetTensorDataAsSpan<float>()).ToArray()),
            TensorElementType.Int64 => new TensorData(TensorDType.I64, shape, MemoryMarshal.AsBytes(value.GetTensorDataAsSpan<long>()).ToArray()),
            TensorElementType.Bool => new TensorData(TensorDType.BOOL, shape, MemoryMarshal.AsBytes(value.GetTensorDataAsSpan<bool>()).ToArray()),
            var t => throw new NotSupportedException($"Output element type {t} is not supported."),
        };
    }

    /// <summary>Item <paramref name="index"/> of a batched tensor, keeping a batch dimension of 1.</summary>
    private static TensorData Slice(TensorData t, int index)
    {
        long per = t.Data.LongLength / t.Shape[0];
        var shape = (long[])t.Shape.Clone();
        shape[0] = 1;
        return new TensorData(t.DType, shape, t.Data.AsSpan((int)(per * index), (int)per).ToArray());
    }

    /// <summary>Releases the native session.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
        _sessionOptions.Dispose();
    }
}
