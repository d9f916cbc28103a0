using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;

namespace Beit.Tests.Onnx;

/// <summary>
/// Creates the process-wide ONNX Runtime environment with a logging callback before any test touches ONNX Runtime,
/// so tests can assert that loading a model logs no warning. Messages are kept per session log id.
/// </summary>
internal static class OrtLogCapture
{
    private static readonly ConcurrentQueue<(OrtLoggingLevel Level, string LogId, string Message)> s_messages = new();
    private static readonly DOrtLoggingFunction s_callback = (_, level, category, logId, location, message) =>
    {
        string text = $"[{category}] {location}: {message}";
        s_messages.Enqueue((level, logId, text));
        Console.Error.WriteLine($"onnxruntime {level} ({logId}) {text}"); // what ONNX Runtime's default logger would show
    };

    [ModuleInitializer]
    internal static void Initialize()
    {
        var options = new EnvironmentCreationOptions
        {
            logId = "beit-tests",
            logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING,
            loggingFunction = s_callback,
        };
        OrtEnv.CreateInstanceWithOptions(ref options);
    }

    /// <summary>Warnings and errors logged by sessions whose log id is <paramref name="logId"/>.</summary>
    public static string[] Messages(string logId) =>
        s_messages.Where(m => m.LogId == logId && m.Level >= OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING).Select(m => m.Message).ToArray();
}
