using System.Diagnostics;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Benchmarks;

/// <summary>
/// <c>--attention</c>: what an attention map costs on BEiT-base 224, batch 1, against the default classifier graph in the
/// same run (interleaved rounds): the graph with <c>OutputAttentions</c> fetching only the logits, then fetching all twelve
/// <c>attentions.{l}</c>; then rollout, the CLS map and a heat-map overlay on a 451×300 image, in milliseconds.
/// </summary>
internal static class AttentionBenchmark
{
    public static void Run(BeitConfig config, Dictionary<string, TensorData> tensors, int threads, int rounds)
    {
        Console.WriteLine($"CPU instruction sets: {CpuFeatures.Current.Describe()}; load average at start: {QuantizedBenchmark.LoadAverage()}");
        var plain = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification);
        var withAttentions = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification, new BeitOnnxExportOptions { OutputAttentions = true });
        var options = new BeitOnnxSessionOptions { IntraOpNumThreads = threads };
        using var baseline = new BeitOnnxSession(plain, options);
        using var explained = new BeitOnnxSession(withAttentions, options);
        var pixels = BeitBaseCheckpoint.Pixels(1, config.ImageSize);
        string[] logits = [BeitOnnxNames.Logits];
        string[] all = explained.OutputNames.ToArray();
        var runs = new (string Name, Action Run)[]
        {
            ("default fused graph, logits (baseline)", () => baseline.Run(pixels, 1, outputNames: logits)),
            ("OutputAttentions graph, logits only", () => explained.Run(pixels, 1, outputNames: logits)),
            ("OutputAttentions graph, logits + 12 attentions", () => explained.Run(pixels, 1, outputNames: all)),
        };
        foreach (var (_, run) in runs) run(); // warm-up
        var times = runs.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < rounds; r++)
        {
            for (int v = 0; v < runs.Length; v++)
            {
                var sw = Stopwatch.StartNew();
                runs[v].Run();
                times[v].Add(sw.Elapsed.TotalMilliseconds);
            }
        }
        double b = Median(times[0]);
        Console.WriteLine($"BEiT-base 224, batch 1, {threads} intra-op threads, {rounds} interleaved rounds (median ms; ratio to the baseline):");
        for (int v = 0; v < runs.Length; v++)
            Console.WriteLine($"  {runs[v].Name,-50} {Median(times[v]),8:F1} ms  {Median(times[v]) / b,5:F2}x");

        var maps = BeitAttentionMaps.FromOutputs(explained.Run(pixels, 1, outputNames: all), new PixelSize(14, 14));
        var image = new RgbImage(new PixelSize(300, 451), Enumerable.Range(0, 451 * 300 * 3).Select(i => (byte)(i * 7)).ToArray());
        var post = new (string Name, Action Run)[]
        {
            ("rollout map (12 layers, 197 tokens)", () => maps.Map(BeitAttentionMethod.Rollout)),
            ("full rollout matrix (197x197)", () => maps.Rollout()),
            ("CLS map (last layer)", () => maps.Map(BeitAttentionMethod.Cls)),
            ("heat-map overlay 451x300 + PNG encode", () => BeitHeatMap.EncodePng(BeitHeatMap.Overlay(image, maps.Map(BeitAttentionMethod.Cls), maps.Grid))),
        };
        foreach (var (name, run) in post)
        {
            run();
            var t = new List<double>();
            for (int r = 0; r < rounds; r++)
            {
                var sw = Stopwatch.StartNew();
                run();
                t.Add(sw.Elapsed.TotalMilliseconds);
            }
            Console.WriteLine($"  {name,-50} {Median(t),8:F2} ms  {Median(t) / b,5:F2}x");
        }
        Console.WriteLine($"Load average at end: {QuantizedBenchmark.LoadAverage()}");
    }

    private static double Median(List<double> values)
    {
        var s = values.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
