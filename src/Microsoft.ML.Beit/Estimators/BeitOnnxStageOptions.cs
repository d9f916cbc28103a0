namespace Microsoft.ML.Beit.Estimators;

/// <summary>ONNX Runtime settings shared by the model stages' options.</summary>
public abstract class BeitOnnxStageOptions
{
    /// <summary>GPU device for ONNX Runtime's CUDA provider; null uses <c>MLContext.GpuDeviceId</c> (the CPU by default). Needs the application to reference <c>Microsoft.ML.OnnxRuntime.Gpu</c>.</summary>
    public int? GpuDeviceId { get; set; }

    /// <summary>Fall back to the CPU when the GPU cannot be used (default false: fail).</summary>
    public bool FallbackToCpu { get; set; }

    /// <summary>Threads inside one ONNX operator; null lets ONNX Runtime choose. Not stored in a saved model: after <c>Load</c>, use <c>mlContext.SetOnnxSessionOption</c>.</summary>
    public int? IntraOpNumThreads { get; set; }

    /// <summary>Threads running independent ONNX operators; null lets ONNX Runtime choose. Not stored in a saved model.</summary>
    public int? InterOpNumThreads { get; set; }

    /// <summary>
    /// Export settings (operator set, another input resolution, <see cref="Onnx.BeitOnnxExportOptions.Precision"/>: Int8 for
    /// the CPU, Float16 for a GPU) when the model is a checkpoint or tensors; ignored for ONNX sources.
    /// </summary>
    public Onnx.BeitOnnxExportOptions? ExportOptions { get; set; }
}
