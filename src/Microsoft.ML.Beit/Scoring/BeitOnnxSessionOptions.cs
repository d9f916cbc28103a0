using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>Where a <see cref="BeitOnnxSession"/> runs.</summary>
/// <remarks>
/// The library references only the managed ONNX Runtime package; the application chooses the native one.
/// CUDA needs the application to reference <c>Microsoft.ML.OnnxRuntime.Gpu</c> (1.31.0, CUDA 13) instead of
/// <c>Microsoft.ML.OnnxRuntime</c>, and a working CUDA installation.
/// </remarks>
public enum BeitExecutionProvider
{
    /// <summary>ONNX Runtime's CPU provider (the default).</summary>
    Cpu,
    /// <summary>CUDA, strictly: creating the session throws <see cref="InvalidOperationException"/> if CUDA cannot be used.</summary>
    Cuda,
    /// <summary>
    /// CUDA when it can be used, otherwise the CPU. The fallback is never silent: it is reported through
    /// <see cref="BeitOnnxSessionOptions.Log"/>, and <see cref="BeitOnnxSession.ExecutionProvider"/> says what runs.
    /// </summary>
    CudaIfAvailable,
}

/// <summary>Options of a <see cref="BeitOnnxSession"/>.</summary>
public sealed class BeitOnnxSessionOptions
{
    /// <summary>Threads inside one operator; null lets ONNX Runtime choose (one per physical core).</summary>
    public int? IntraOpThreads { get; set; }

    /// <summary>Threads running independent operators in parallel; null lets ONNX Runtime choose (execution is sequential).</summary>
    public int? InterOpThreads { get; set; }

    /// <summary>ONNX Runtime's graph optimisation level; <see cref="GraphOptimizationLevel.ORT_ENABLE_ALL"/> by default.</summary>
    public GraphOptimizationLevel GraphOptimizationLevel { get; set; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>The execution provider; <see cref="BeitExecutionProvider.Cpu"/> by default.</summary>
    public BeitExecutionProvider ExecutionProvider { get; set; } = BeitExecutionProvider.Cpu;

    /// <summary>The CUDA device for <see cref="BeitExecutionProvider.Cuda"/> and <see cref="BeitExecutionProvider.CudaIfAvailable"/>.</summary>
    public int CudaDeviceId { get; set; }

    /// <summary>If set, ONNX Runtime writes the optimised graph here when the session is created (for inspection).</summary>
    public string? OptimizedModelFilePath { get; set; }

    /// <summary>
    /// Extra ONNX Runtime session configuration entries (<c>SessionOptions.AddSessionConfigEntry</c>), e.g.
    /// <c>session.intra_op.allow_spinning = 0</c> to stop idle worker threads spinning on a shared machine.
    /// </summary>
    public IDictionary<string, string> ConfigEntries { get; } = new Dictionary<string, string>();

    /// <summary>
    /// Receives notes the session must not keep silent, such as a CUDA → CPU fallback. Null writes them to
    /// <see cref="System.Diagnostics.Trace"/> as warnings.
    /// </summary>
    public Action<string>? Log { get; set; }
}
