using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>Options of a <see cref="BeitOnnxSession"/>.</summary>
/// <remarks>
/// The names are ML.NET's own <c>OnnxOptions</c> names (<c>GpuDeviceId</c>, <c>FallbackToCpu</c>,
/// <c>IntraOpNumThreads</c>, <c>InterOpNumThreads</c>), as on the pipeline stages' options.
/// The library references only the managed ONNX Runtime package; the application chooses the native one.
/// CUDA needs the application to reference <c>Microsoft.ML.OnnxRuntime.Gpu</c> (1.31.0, CUDA 13) instead of
/// <c>Microsoft.ML.OnnxRuntime</c>, and a working CUDA installation.
/// </remarks>
public sealed class BeitOnnxSessionOptions
{
    /// <summary>Threads inside one operator; null lets ONNX Runtime choose (one per physical core).</summary>
    public int? IntraOpNumThreads { get; set; }

    /// <summary>Threads running independent operators in parallel; null lets ONNX Runtime choose (execution is sequential).</summary>
    public int? InterOpNumThreads { get; set; }

    /// <summary>ONNX Runtime's graph optimisation level; <see cref="GraphOptimizationLevel.ORT_ENABLE_ALL"/> by default.</summary>
    public GraphOptimizationLevel GraphOptimizationLevel { get; set; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// The CUDA device to run on; null (the default) runs on the CPU. When CUDA cannot be used, creating the session
    /// throws <see cref="InvalidOperationException"/> unless <see cref="FallbackToCpu"/> is set.
    /// </summary>
    public int? GpuDeviceId { get; set; }

    /// <summary>
    /// With <see cref="GpuDeviceId"/>: run on the CPU when CUDA cannot be used (default false: fail). The fallback is
    /// never silent: it is reported through <see cref="Log"/>, and <see cref="BeitOnnxSession.ExecutionProvider"/> says what runs.
    /// </summary>
    public bool FallbackToCpu { get; set; }

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
