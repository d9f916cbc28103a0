using System.Diagnostics;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.OnnxRuntime;
using Google.Protobuf;

namespace Beit.Benchmarks;

/// <summary>
/// <c>--quantized</c>: BEiT-base float32 vs int8 exports (img/s, ratio, file size, logit cosine similarity), and the limit
/// they aim at — ONNX Runtime's fp32 <c>MatMul</c> and the int8 <c>DynamicQuantizeMatMul</c> alone on BEiT-base's four
/// projection shapes — all in one run, interleaved, medians.
/// </summary>
internal static class QuantizedBenchmark
{
    // BEiT-base's projections per layer: [tokens, K] × [K, N].
    private static readonly (string Name, int K, int N)[] s_shapes =
    [
        ("QKV [768, 2304]", 768, 2304),
        ("attention output [768, 768]", 768, 768),
        ("MLP fc1 [768, 3072]", 768, 3072),
        ("MLP fc2 [3072, 768]", 3072, 768),
    ];

    public static void Run(BeitConfig config, Dictionary<string, TensorData> tensors, int threads, int[] batches, int[] rounds, bool profile, string tmp)
    {
        Console.WriteLine($"CPU instruction sets: {CpuFeatures.Current.Describe()}; load average at start: {LoadAverage()}");
        var sw = Stopwatch.StartNew();
        var graphs = new List<(string Name, byte[] Model)>
        {
            ("float32, fused (baseline)", BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification)),
            ("int8, DynamicQuantizeMatMul + MultiHeadAttention (default)", Int8(config, tensors, BeitInt8MatMul.DynamicQuantizeMatMul, true)),
            ("int8, DynamicQuantizeMatMul + standard attention subgraph", Int8(config, tensors, BeitInt8MatMul.DynamicQuantizeMatMul, false)),
        };
        // DynamicQuantizeLinear + MatMulIntegerToFloat: ONNX Runtime fuses the pair into DynamicQuantizeMatMul, so after
        // optimisation it is the default graph; it is exported only for the profile (--profile), which shows that fusion.
        if (profile) graphs.Add(("int8, DynamicQuantizeLinear + MatMulIntegerToFloat + MultiHeadAttention", Int8(config, tensors, BeitInt8MatMul.MatMulIntegerToFloat, true)));
        Console.WriteLine($"Exported {graphs.Count} graphs in {sw.Elapsed.TotalSeconds:F1} s");
        if (profile)
        {
            // Where int8 time goes, with the activation quantization as its own node (DynamicQuantizeLinear).
            foreach (int batch in batches)
                foreach (int v in new[] { 0, graphs.Count - 1 })
                    Profiling.Run(graphs[v].Name, graphs[v].Model, GraphOptimizationLevel.ORT_ENABLE_ALL, threads, batch, config.ImageSize,
                        BeitBaseCheckpoint.Pixels(batch, config.ImageSize), 3, tmp);
            return;
        }
        Console.WriteLine("| Graph | ONNX file size (MB) | size / float32 |");
        Console.WriteLine("|---|---|---|");
        foreach (var (name, model) in graphs)
            Console.WriteLine($"| {name} | {model.Length / 1e6:F1} | {(double)model.Length / graphs[0].Model.Length:F3} |");
        Console.WriteLine();

        // Idle intra-op threads must not spin: this run holds many sessions, each with its own thread pool, and a pool that
        // spins after its run steals the CPU from the next session's run (most from the short GEMM runs).
        var sessions = graphs.Select(g =>
        {
            var o = new BeitOnnxSessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
            o.ConfigEntries[NoSpinning] = "0";
            return new BeitOnnxSession(g.Model, o);
        }).ToArray();
        try
        {
            // Accuracy on random pixels: cosine similarity of the logits and top-1 agreement, int8 vs float32.
            const int accuracyBatch = 8;
            var px = BeitBaseCheckpoint.Pixels(accuracyBatch, config.ImageSize);
            var reference = sessions[0].Run(px, accuracyBatch, outputNames: ["logits"])["logits"].ToFloatArray();
            for (int v = 1; v < sessions.Length; v++)
            {
                var logits = sessions[v].Run(px, accuracyBatch, outputNames: ["logits"])["logits"].ToFloatArray();
                double cosMin = 1;
                int agree = 0, labels = config.NumLabels;
                for (int r = 0; r < accuracyBatch; r++)
                {
                    var a = reference.AsSpan(r * labels, labels);
                    var b = logits.AsSpan(r * labels, labels);
                    cosMin = Math.Min(cosMin, Cosine(a, b));
                    if (ArgMax(a) == ArgMax(b)) agree++;
                }
                Console.WriteLine($"{graphs[v].Name}: logit cosine similarity with float32 min {cosMin:F5} over {accuracyBatch} images " +
                    $"({(cosMin >= 0.999 ? "meets" : "MISSES")} ≥ 0.999), top-1 agreement {agree}/{accuracyBatch}");
            }
            Console.WriteLine();

            for (int bi = 0; bi < batches.Length; bi++)
            {
                int batch = batches[bi], roundCount = rounds[Math.Min(bi, rounds.Length - 1)];
                int m = batch * (config.ImageSize / config.PatchSize) * (config.ImageSize / config.PatchSize) + batch; // tokens × batch
                var pixels = BeitBaseCheckpoint.Pixels(batch, config.ImageSize);
                using var gemms = new GemmSet(m, threads, config.NumHiddenLayers);
                foreach (var s in sessions) s.Run(pixels, batch, outputNames: ["logits"]);
                gemms.Warm();
                var modelTimes = sessions.Select(_ => new List<double>()).ToList();
                var gemmFp32 = s_shapes.Select(_ => new List<double>()).ToList();
                var gemmInt8 = s_shapes.Select(_ => new List<double>()).ToList();
                for (int r = 0; r < roundCount; r++)
                {
                    // Rotate the order each round so that load spikes hit every variant alike.
                    for (int k = 0; k < sessions.Length + 1; k++)
                    {
                        int v = (k + r) % (sessions.Length + 1);
                        if (v == sessions.Length)
                        {
                            for (int s = 0; s < s_shapes.Length; s++)
                            {
                                gemmFp32[s].Add(gemms.Time(s, int8: false));
                                gemmInt8[s].Add(gemms.Time(s, int8: true));
                            }
                            continue;
                        }
                        var t = Stopwatch.StartNew();
                        sessions[v].Run(pixels, batch, outputNames: ["logits"]);
                        modelTimes[v].Add(t.Elapsed.TotalSeconds);
                    }
                }

                Console.WriteLine($"Batch {batch}, {threads} threads, {roundCount} interleaved rounds, medians; load average now {LoadAverage()}");
                Console.WriteLine("| Graph | img/s | ratio to float32 |");
                Console.WriteLine("|---|---|---|");
                var med = modelTimes.Select(t => Median(t)).ToArray();
                for (int v = 0; v < sessions.Length; v++)
                    Console.WriteLine($"| {graphs[v].Name} | {batch / med[v]:F2} | {med[0] / med[v]:F2} |");
                Console.WriteLine();

                Console.WriteLine($"GEMMs alone, M = {m} (batch {batch} × {m / batch} tokens): ONNX Runtime MatMul (fp32) vs DynamicQuantizeMatMul (int8 weights, per-column scales)");
                Console.WriteLine("| Shape | fp32 GFLOP/s | int8 GFLOP/s | int8 / fp32 |");
                Console.WriteLine("|---|---|---|---|");
                double layerFp32 = 0, layerInt8 = 0;
                for (int s = 0; s < s_shapes.Length; s++)
                {
                    double flops = 2.0 * m * s_shapes[s].K * s_shapes[s].N;
                    double f = Median(gemmFp32[s]), q = Median(gemmInt8[s]);
                    layerFp32 += f;
                    layerInt8 += q;
                    Console.WriteLine($"| {s_shapes[s].Name} | {flops / f / 1e9:F0} | {flops / q / 1e9:F0} | {f / q:F2} |");
                }
                // If the model did nothing but its 12 layers' projections at the GEMMs' own speed:
                double limitFp32 = batch / (config.NumHiddenLayers * layerFp32), limitInt8 = batch / (config.NumHiddenLayers * layerInt8);
                Console.WriteLine($"| all four, per layer | — | — | {layerFp32 / layerInt8:F2} |");
                Console.WriteLine();
                Console.WriteLine($"GEMM-only limit: float32 {limitFp32:F2} img/s, int8 {limitInt8:F2} img/s. The whole float32 model reaches " +
                    $"{batch / med[0] / limitFp32:P0} of its limit; the default int8 model reaches {batch / med[1] / limitInt8:P0} of the int8 GEMM throughput (goal ≥ 80 %). " +
                    $"int8 GEMM speed-up {layerFp32 / layerInt8:F2}×, whole-model speed-up {med[0] / med[1]:F2}× ({med[0] / med[1] / (layerFp32 / layerInt8):P0} of it).");
                Console.WriteLine();
            }
            Console.WriteLine($"Load average at end: {LoadAverage()}");
        }
        finally
        {
            foreach (var s in sessions) s.Dispose();
        }
    }

    private static byte[] Int8(BeitConfig config, Dictionary<string, TensorData> tensors, BeitInt8MatMul op, bool attentionOperator) =>
        BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification, new BeitOnnxExportOptions
        {
            Precision = BeitOnnxPrecision.Int8, Int8MatMul = op, AttentionOperator = attentionOperator,
        });

    private static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++) { ab += a[i] * (double)b[i]; aa += a[i] * (double)a[i]; bb += b[i] * (double)b[i]; }
        return ab / Math.Sqrt(aa * bb);
    }

    private static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    private static double Median(List<double> values)
    {
        var s = values.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    private const string NoSpinning = "session.intra_op.allow_spinning";

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    /// <summary>One-node ONNX graphs (A float [M, K] input, B a constant) per projection shape, fp32 and int8, with their sessions.</summary>
    private sealed class GemmSet : IDisposable
    {
        private readonly int _repeats;
        private readonly List<(InferenceSession Fp32, InferenceSession Int8, OrtValue Input, int K)> _items = new();
        private readonly SessionOptions _options;
        private readonly RunOptions _run = new();

        public GemmSet(int m, int threads, int repeats)
        {
            _repeats = repeats;
            _options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
            _options.AddSessionConfigEntry(NoSpinning, "0");
            var rng = new Random(5);
            foreach (var (_, k, n) in s_shapes)
            {
                var w = Enumerable.Range(0, k * n).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.05f).ToArray();
                var a = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var fp32 = new InferenceSession(Graph(m, k, n, b => b.Op("MatMul", "mm", "A", b.Initializer("B", w, k, n))), _options);
                var (q, scales) = BeitExportContext.QuantizeWeights(w, k, n, reduceRange: false);
                var int8 = new InferenceSession(Graph(m, k, n, b => b.MsOp("DynamicQuantizeMatMul", "mm",
                    ["A", b.Initializer("B", q, k, n), b.Initializer("B_scale", scales, n)])), _options);
                _items.Add((fp32, int8, OrtValue.CreateTensorValueFromMemory(a, [m, k]), k));
            }
        }

        private static byte[] Graph(int m, int k, int n, Func<OnnxGraphBuilder, string> body)
        {
            var b = new OnnxGraphBuilder();
            b.Input("A", TensorProto.Types.DataType.Float, m, k);
            var y = body(b);
            b.Rename(y, "Y");
            b.Output("Y", TensorProto.Types.DataType.Float, m, n);
            var model = new ModelProto { IrVersion = 8, Graph = b.Graph };
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = BeitOnnxExporter.OnnxOpset });
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = OnnxGraphBuilder.MicrosoftDomain, Version = 1 });
            return model.ToByteArray();
        }

        public void Warm()
        {
            for (int s = 0; s < _items.Count; s++) { Time(s, false); Time(s, true); }
        }

        /// <summary>
        /// Seconds per run of shape <paramref name="s"/>, from back-to-back runs as many as the model has layers (one run
        /// alone lasts a few milliseconds, the size of a scheduler time slice on this shared machine).
        /// </summary>
        public double Time(int s, bool int8)
        {
            var item = _items[s];
            var session = int8 ? item.Int8 : item.Fp32;
            var t = Stopwatch.StartNew();
            for (int r = 0; r < _repeats; r++)
            {
                using var results = session.Run(_run, ["A"], [item.Input], ["Y"]);
            }
            return t.Elapsed.TotalSeconds / _repeats;
        }

        public void Dispose()
        {
            foreach (var (f, q, input, _) in _items) { f.Dispose(); q.Dispose(); input.Dispose(); }
            _options.Dispose();
            _run.Dispose();
        }
    }
}
