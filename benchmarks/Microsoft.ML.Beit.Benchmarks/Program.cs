// BEiT → ONNX benchmark harness: exports a BEiT-base classifier with random weights made at run time and reports
// ONNX Runtime throughput of our graphs as ratios against a baseline with Hugging Face's export structure, all
// measured in this one run (interleaved rounds, so machine noise hits every variant alike).
//
//   dotnet run -c Release --project benchmarks/Microsoft.ML.Beit.Benchmarks -- [options]
//     --threads N        intra-op threads (default 2)
//     --batches 1,8      batch sizes (default 1,8)
//     --rounds R         interleaved measuring rounds per batch size (default 5)
//     --seconds S        measuring seconds per variant and batch size, split over the rounds (default 10)
//     --hf-onnx PATH     also time a real Hugging Face BEiT-base export (224, input pixel_values) as a baseline
//     --keep-optimized   keep ONNX Runtime's optimised graphs in the temp folder
//     --only 0,1         measure only these variants (numbered as printed)
//     --no-node-counts   skip saving and counting ONNX Runtime's optimised graphs (faster session loads)
//     --profile          print ONNX Runtime's per-operator time profile of each variant and exit
//     --cpu-time         also report throughput per CPU time (idle ORT threads do not spin), which other processes
//                        on a shared machine disturb far less than wall-clock time
using System.Diagnostics;
using Beit.Benchmarks;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.OnnxRuntime;

int threads = 2, rounds = 5;
double seconds = 10;
int[] batches = [1, 8];
string? hfOnnx = null;
bool keepOptimized = false, nodeCounts = true, cpuTime = false, profile = false;
int[]? only = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--threads": threads = int.Parse(args[++i]); break;
        case "--batches": batches = args[++i].Split(',').Select(int.Parse).ToArray(); break;
        case "--rounds": rounds = int.Parse(args[++i]); break;
        case "--seconds": seconds = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--hf-onnx": hfOnnx = args[++i]; break;
        case "--keep-optimized": keepOptimized = true; break;
        case "--only": only = args[++i].Split(',').Select(int.Parse).ToArray(); break;
        case "--no-node-counts": nodeCounts = false; break;
        case "--cpu-time": cpuTime = true; break;
        case "--profile": profile = true; break;
        default: Console.Error.WriteLine($"Unknown option {args[i]}; see the comment at the top of Program.cs."); return 2;
    }
}

Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()}, {Environment.ProcessorCount} logical CPUs, {threads} intra-op threads");
var sw = Stopwatch.StartNew();
var config = BeitBaseCheckpoint.Config();
var tensors = BeitBaseCheckpoint.Tensors(config);
Console.WriteLine($"BEiT-base random checkpoint: {tensors.Values.Sum(t => t.ElementCount):N0} parameters, made in {sw.Elapsed.TotalSeconds:F1} s");

// ---- export time -------------------------------------------------------------------------------------------------
string tmp = Path.Combine(Path.GetTempPath(), "beit-bench-" + Guid.NewGuid().ToString("N"));
Directory.CreateDirectory(tmp);
try
{
    var fusedOptions = new BeitOnnxExportOptions { OperatorSet = BeitOnnxOperatorSet.OnnxRuntimeFused };
    var standardOptions = new BeitOnnxExportOptions { OperatorSet = BeitOnnxOperatorSet.Standard };
    sw.Restart();
    BeitOnnxExporter.Export(config, tensors, BeitOnnxTask.ImageClassification, Path.Combine(tmp, "fused.onnx"), fusedOptions);
    double exportFile = sw.Elapsed.TotalSeconds;
    sw.Restart();
    var fused = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification, fusedOptions);
    double exportFused = sw.Elapsed.TotalSeconds;
    sw.Restart();
    var standard = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification, standardOptions);
    double exportStandard = sw.Elapsed.TotalSeconds;
    var baseline = HfExportStructureGraph.Build(config, tensors);
    var hybrid = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification,
        new BeitOnnxExportOptions { OperatorSet = BeitOnnxOperatorSet.OnnxRuntimeFused, AttentionOperator = false });
    Console.WriteLine($"Export time (BEiT-base, image classification): to file {exportFile:F2} s, to bytes {exportFused:F2} s (fused), {exportStandard:F2} s (standard); {fused.Length / 1e6:F0} MB");
    Console.WriteLine();

    var variants = new List<Variant>
    {
        new("HF export structure, ORT_ENABLE_ALL (baseline)", baseline, GraphOptimizationLevel.ORT_ENABLE_ALL),
        new("ours, fused (default), ORT_ENABLE_ALL", fused, GraphOptimizationLevel.ORT_ENABLE_ALL),
        new("ours, standard ops, ORT_ENABLE_ALL", standard, GraphOptimizationLevel.ORT_ENABLE_ALL),
        new("ours, fused (default), ORT_ENABLE_BASIC", fused, GraphOptimizationLevel.ORT_ENABLE_BASIC),
        new("ours, standard ops, ORT_ENABLE_BASIC", standard, GraphOptimizationLevel.ORT_ENABLE_BASIC),
        new("HF export structure, ORT_ENABLE_BASIC", baseline, GraphOptimizationLevel.ORT_ENABLE_BASIC),
        new("ours, fused without Attention op, ORT_ENABLE_ALL", hybrid, GraphOptimizationLevel.ORT_ENABLE_ALL),
    };
    if (hfOnnx != null) variants.Add(new("real HF export (--hf-onnx), ORT_ENABLE_ALL", File.ReadAllBytes(hfOnnx), GraphOptimizationLevel.ORT_ENABLE_ALL));
    if (only != null) variants = only.Select(i => variants[i]).ToList();
    if (profile)
    {
        foreach (var v in variants)
            foreach (int batch in batches)
                Profiling.Run(v.Name, v.Model, v.Level, threads, batch, BeitBaseCheckpoint.Pixels(batch, config.ImageSize), 5, tmp);
        return 0;
    }

    // ---- sessions and what ONNX Runtime made of each graph ---------------------------------------------------------
    Console.WriteLine("| Variant | session load (s) | nodes after optimisation |");
    Console.WriteLine("|---|---|---|");
    for (int v = 0; v < variants.Count; v++)
    {
        var variant = variants[v];
        string optimized = Path.Combine(tmp, $"optimized-{v}.onnx");
        sw.Restart();
        var sessionOptions = new BeitOnnxSessionOptions
        {
            IntraOpThreads = threads,
            InterOpThreads = 1,
            GraphOptimizationLevel = variant.Level,
            OptimizedModelFilePath = nodeCounts ? optimized : null,
        };
        if (cpuTime) sessionOptions.ConfigEntries["session.intra_op.allow_spinning"] = "0";
        variant.Session = new BeitOnnxSession(variant.Model, sessionOptions);
        double load = sw.Elapsed.TotalSeconds;
        var counts = new List<string>();
        if (nodeCounts)
        {
            var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph;
            if (!keepOptimized) File.Delete(optimized);
            counts = graph.Node.GroupBy(n => n.OpType).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}").ToList();
        }
        Console.WriteLine($"| {variant.Name} | {load:F1} | {string.Join(", ", counts)} |");
    }
    Console.WriteLine();

    // ---- throughput ----------------------------------------------------------------------------------------------
    foreach (int batch in batches)
    {
        var pixels = BeitBaseCheckpoint.Pixels(batch, config.ImageSize);
        foreach (var v in variants) v.Session!.Run(pixels, batch, outputNames: ["logits"]); // warm-up
        var perRound = variants.Select(_ => new List<double>()).ToList();
        var perRoundCpu = variants.Select(_ => new List<double>()).ToList();
        var process = Process.GetCurrentProcess();
        double budget = seconds / rounds;
        for (int r = 0; r < rounds; r++)
        {
            for (int k = 0; k < variants.Count; k++)
            {
                int v = (k + r) % variants.Count; // rotate the order so no variant always follows the same neighbour
                process.Refresh();
                var cpu0 = process.TotalProcessorTime;
                var t = Stopwatch.StartNew();
                int runs = 0;
                do
                {
                    variants[v].Session!.Run(pixels, batch, outputNames: ["logits"]);
                    runs++;
                } while (t.Elapsed.TotalSeconds < budget);
                double wall = t.Elapsed.TotalSeconds;
                process.Refresh();
                perRound[v].Add(runs * batch / wall);
                // CPU seconds spread over the intra-op threads: the wall time the run would take if it had the cores alone.
                perRoundCpu[v].Add(runs * batch / ((process.TotalProcessorTime - cpu0).TotalSeconds / threads));
            }
        }
        var medians = perRound.Select(Median).ToArray();
        Console.WriteLine($"Batch {batch}, {threads} threads: img/s over {rounds} interleaved rounds; ratios are this variant / the baseline (first row) of this run");
        Console.WriteLine("| Variant | img/s (median) | img/s (best round) | ratio vs baseline (medians) | ratio (per-round median) | ratio (bests) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        for (int v = 0; v < variants.Count; v++)
        {
            var ratios = perRound[v].Zip(perRound[0], (a, b) => a / b).ToList();
            Console.WriteLine($"| {variants[v].Name} | {medians[v]:F2} | {perRound[v].Max():F2} | {medians[v] / medians[0]:F2} | {Median(ratios):F2} | {perRound[v].Max() / perRound[0].Max():F2} |");
        }
        Console.WriteLine();
        if (cpuTime)
        {
            var cpuMedians = perRoundCpu.Select(Median).ToArray();
            Console.WriteLine($"Batch {batch}: img/s per {threads} CPU-seconds (process CPU time / {threads}; no spinning), same rounds");
            Console.WriteLine("| Variant | img/s (CPU time, median) | best round | ratio vs baseline (medians) | ratio (per-round median) |");
            Console.WriteLine("|---|---|---|---|---|");
            for (int v = 0; v < variants.Count; v++)
            {
                var ratios = perRoundCpu[v].Zip(perRoundCpu[0], (a, b) => a / b).ToList();
                Console.WriteLine($"| {variants[v].Name} | {cpuMedians[v]:F2} | {perRoundCpu[v].Max():F2} | {cpuMedians[v] / cpuMedians[0]:F2} | {Median(ratios):F2} |");
            }
            Console.WriteLine();
        }
    }
    foreach (var v in variants) v.Session?.Dispose();

    // ---- tiny: the real HF export vs ours, same checkpoint -------------------------------------------------------
    var tinyFolder = FindFixture("tiny/cls_relpos");
    if (tinyFolder != null)
    {
        var hf = new BeitOnnxSession(Path.Combine(tinyFolder, "model.onnx"), new BeitOnnxSessionOptions { IntraOpThreads = threads, InterOpThreads = 1 });
        var ours = new BeitOnnxSession(BeitOnnxExporter.ExportToBytes(tinyFolder, BeitOnnxTask.ImageClassification), new BeitOnnxSessionOptions { IntraOpThreads = threads, InterOpThreads = 1 });
        var px = BeitBaseCheckpoint.Pixels(8, 32);
        var rates = new List<double>[] { new(), new() };
        var sessions = new[] { hf, ours };
        for (int r = 0; r < 2 * rounds; r++)
        {
            for (int s = 0; s < 2; s++)
            {
                var t = Stopwatch.StartNew();
                int runs = 0;
                do { sessions[s].Run(px, 8, outputNames: ["logits"]); runs++; } while (t.Elapsed.TotalSeconds < 0.2);
                rates[s].Add(runs * 8 / t.Elapsed.TotalSeconds);
            }
        }
        Console.WriteLine($"Tiny cls_relpos (32x32, 4 layers), batch 8: real HF export {Median(rates[0]):F0} img/s, ours (fused) {Median(rates[1]):F0} img/s, ratio {Median(rates[1]) / Median(rates[0]):F2}");
        hf.Dispose();
        ours.Dispose();
    }
}
finally
{
    if (!keepOptimized) Directory.Delete(tmp, recursive: true);
    else Console.WriteLine($"Optimised graphs kept in {tmp}");
}
return 0;

static double Median(List<double> values)
{
    var s = values.OrderBy(x => x).ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

static string? FindFixture(string relative)
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
    {
        var candidate = Path.Combine(dir.FullName, "test", "fixtures", "hf-beit", relative);
        if (Directory.Exists(candidate)) return candidate;
    }
    return null;
}

internal sealed class Variant(string name, byte[] model, GraphOptimizationLevel level)
{
    public string Name { get; } = name;
    public byte[] Model { get; } = model;
    public GraphOptimizationLevel Level { get; } = level;
    public BeitOnnxSession? Session { get; set; }
}
