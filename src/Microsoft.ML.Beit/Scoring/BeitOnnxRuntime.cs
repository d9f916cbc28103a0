using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>
/// The check every ONNX Runtime entry point makes before any work: is a native ONNX Runtime library
/// (<c>onnxruntime</c>) loadable by this application?
/// </summary>
/// <remarks>
/// This library references only <c>Microsoft.ML.OnnxRuntime.Managed</c>, so that the application, not the library,
/// chooses between the CPU package (<c>Microsoft.ML.OnnxRuntime</c>) and the CUDA one
/// (<c>Microsoft.ML.OnnxRuntime.Gpu</c>): both ship a native library of the same name, and only one can be loaded.
/// Without either, ONNX Runtime would fail late (after training, or at the first row) with a
/// <see cref="TypeInitializationException"/> wrapping <see cref="DllNotFoundException"/>; this check fails first,
/// with one message naming the package to add.
/// </remarks>
public static class BeitOnnxRuntime
{
    /// <summary>The native library name ONNX Runtime's managed package imports.</summary>
    internal const string NativeLibraryName = "onnxruntime";

    private static readonly Lazy<bool> s_loadable = new(Probe);

    private static readonly AsyncLocal<Func<bool>?> s_probeOverride = new();

    /// <summary>
    /// Replaces the probe for the current async flow only (tests simulate an application without a native package
    /// while other tests run in parallel); null restores it.
    /// </summary>
    internal static Func<bool>? ProbeOverride
    {
        get => s_probeOverride.Value;
        set => s_probeOverride.Value = value;
    }

    /// <summary>The message of <see cref="BeitOnnxRuntimeMissingException"/>.</summary>
    public const string MissingMessage =
        "ONNX Runtime's native library (onnxruntime) is not part of this application. Add exactly one native package to the " +
        "application project: 'dotnet add package Microsoft.ML.OnnxRuntime' (CPU), or 'dotnet add package Microsoft.ML.OnnxRuntime.Gpu " +
        "--version 1.31.0' (CUDA 13). Microsoft.ML.Beit references only Microsoft.ML.OnnxRuntime.Managed so that the application chooses.";

    /// <summary>Whether the native ONNX Runtime library can be loaded (the answer is cached for the process).</summary>
    public static bool IsAvailable => ProbeOverride is { } probe ? probe() : s_loadable.Value;

    /// <summary>Throws <see cref="BeitOnnxRuntimeMissingException"/> unless <see cref="IsAvailable"/>.</summary>
    /// <param name="entryPoint">What was about to run, named in the message (e.g. <c>BeitClassifier</c>).</param>
    public static void EnsureAvailable(string entryPoint)
    {
        if (!IsAvailable) throw new BeitOnnxRuntimeMissingException(entryPoint);
    }

    /// <summary>
    /// Why ONNX Runtime's CUDA provider cannot be used on <paramref name="deviceId"/>, or null when it can: the loaded
    /// native package has no CUDA provider (it is <c>Microsoft.ML.OnnxRuntime</c>, not <c>.Gpu</c>), or CUDA 13 /
    /// the device is missing. Callers that fall back to the CPU print the reason, so the fallback is never silent.
    /// </summary>
    /// <exception cref="BeitOnnxRuntimeMissingException">No native ONNX Runtime at all.</exception>
    public static string? CudaUnavailableReason(int deviceId = 0)
    {
        EnsureAvailable(nameof(CudaUnavailableReason));
        string[] available = OrtEnv.Instance().GetAvailableProviders();
        if (!available.Contains("CUDAExecutionProvider"))
            return $"the loaded ONNX Runtime has no CUDA provider (available: {string.Join(", ", available)}); the application must reference " +
                   "Microsoft.ML.OnnxRuntime.Gpu 1.31.0 instead of Microsoft.ML.OnnxRuntime (the beit tool and samples: build with -p:BeitOnnxRuntime=Gpu)";
        using var options = new SessionOptions();
        try
        {
            // Appending the provider loads it and CUDA's libraries, and checks the device.
            options.AppendExecutionProvider_CUDA(deviceId);
            return null;
        }
        catch (OnnxRuntimeException e)
        {
            return $"CUDA device {deviceId} could not be initialised: {e.Message}";
        }
    }

    // The same resolution DllImport uses for ONNX Runtime's own assembly (the application's deps.json native assets,
    // its folder, then the system), without touching ONNX Runtime's types: a failed type initializer would stay failed.
    private static bool Probe()
    {
        if (!NativeLibrary.TryLoad(NativeLibraryName, typeof(InferenceSession).Assembly, null, out var handle)) return false;
        // Keep it loaded: ONNX Runtime loads the same library moments later.
        GC.KeepAlive(handle);
        return true;
    }
}

/// <summary>
/// No native ONNX Runtime library in this application: add <c>Microsoft.ML.OnnxRuntime</c> (CPU) or
/// <c>Microsoft.ML.OnnxRuntime.Gpu</c> 1.31.0 (CUDA 13) to the application project.
/// </summary>
public sealed class BeitOnnxRuntimeMissingException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="entryPoint"/>.</summary>
    public BeitOnnxRuntimeMissingException(string entryPoint)
        : base($"{entryPoint}: {BeitOnnxRuntime.MissingMessage}")
    {
        EntryPoint = entryPoint;
    }

    /// <summary>What was about to run.</summary>
    public string EntryPoint { get; }
}
