using System.Text.Json;
using Microsoft.ML.OnnxRuntime;

namespace Beit.Benchmarks;

/// <summary>
/// <c>--profile</c>: ONNX Runtime's per-node profiler over a few runs, summed per operator type, to see where the time
/// goes inside a graph (shares of the total are meaningful even on a busy machine; absolute times are not).
/// </summary>
internal static class Profiling
{
    public static void Run(string name, byte[] model, GraphOptimizationLevel level, int threads, int batch, int size, float[] pixels, int runs, string folder)
    {
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = level,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            EnableProfiling = true,
            ProfileOutputPathPrefix = Path.Combine(folder, "profile"),
        };
        string file;
        using (var session = new InferenceSession(model, options))
        {
            using var input = OrtValue.CreateTensorValueFromMemory(pixels, [batch, 3, size, size]);
            var inputs = new Dictionary<string, OrtValue> { ["pixel_values"] = input };
            using var runOptions = new RunOptions();
            for (int i = 0; i < runs + 1; i++)
            {
                using var r = session.Run(runOptions, inputs, ["logits"]);
            }
            file = session.EndProfiling();
        }
        var perOp = new Dictionary<string, double>();
        int kernelEvents = 0;
        using (var doc = JsonDocument.Parse(File.ReadAllText(file)))
        {
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
                string op = e.GetProperty("args").GetProperty("op_name").GetString()!;
                perOp[op] = perOp.GetValueOrDefault(op) + e.GetProperty("dur").GetDouble();
                kernelEvents++;
            }
        }
        File.Delete(file);
        double total = perOp.Values.Sum();
        Console.WriteLine($"Profile of {name}, batch {batch}, {runs + 1} runs (first is warm-up): {total / 1000 / (runs + 1):F1} ms of kernel time per run");
        foreach (var (op, us) in perOp.OrderByDescending(kv => kv.Value))
            Console.WriteLine($"  {op,-28} {us / total * 100,5:F1} %  {us / 1000 / (runs + 1),8:F2} ms/run");
    }
}
