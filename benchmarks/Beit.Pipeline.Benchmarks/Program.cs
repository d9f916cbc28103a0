// The ML.NET pipeline's throughput against ONNX Runtime on its own, measured in the same run.
//
//   dotnet run -c Release --project benchmarks/Beit.Pipeline.Benchmarks [-- --slices 7 --images 8 --threads 2]
//   ... -- --predict-folder: beit predict's batch scoring on a folder of photos instead (PredictFolderBenchmark.cs).
//
// BEiT-base (224×224, patch 16, 12 layers, per-layer relative position bias, 1000 labels) with seeded random weights,
// exported in memory by our exporter. Cases, all on the same graph (the classifier stage's: flattened pixel_values
// input, probabilities output) with the same ONNX Runtime settings (ORT_ENABLE_ALL, T intra-op threads):
//   pipeline   image files → LoadBeitImages → BeitImageProcessor → BeitClassifier (Score + PredictedLabel read back)
//   raw ORT    an InferenceSession fed the same images already pre-processed to tensors, one image per Run
//   ApplyOnnx  ML.NET's plain ApplyOnnxModel fed the same pre-processed tensors, row by row
// The machine is shared and its load drifts, so the cases run round-robin in short slices and each reports the median.
using System.Diagnostics;
using Beit.Benchmarks;
using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms.Onnx;

if (args.Contains("--predict-folder")) return PredictFolderBenchmark.Run(args);

int slices = Arg("--slices", 7), perSlice = Arg("--images", 8), threads = Arg("--threads", 2);

Console.WriteLine($"BEiT-base 224 classifier, random weights; {threads} intra-op threads; {slices} slices of {perSlice} images per case; " +
                  $"{Environment.ProcessorCount} cores visible, load average {LoadAverage()}");
var sw = Stopwatch.StartNew();
var config = BeitBaseCheckpoint.Config();
var tensors = BeitBaseCheckpoint.Tensors(config);
string[] photos = ["chelsea.png", "astronaut.png", "coffee.png", "camera.png"];
var paths = Enumerable.Range(0, perSlice).Select(i => Path.Combine(AppContext.BaseDirectory, "images", photos[i % photos.Length])).ToArray();
// microsoft/beit-base-patch16-224's preprocessor_config.json: 224×224 bilinear, no crop, mean = std = 0.5.
var processor = new BeitImageProcessor { Size = ResizeSize.Exact(224, 224), Resample = PillowResample.Bilinear, DoCenterCrop = false };

var ml = new MLContext();
var classifierEstimator = ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options
{
    Model = BeitModelSource.FromTensors(config, tensors, "beit-base (random)"),
    IntraOpNumThreads = threads,
    InterOpNumThreads = 1,
});
byte[] onnx = classifierEstimator.OnnxModel;
Console.WriteLine($"Weights and in-memory export: {sw.Elapsed.TotalSeconds:F1} s ({onnx.Length / 1e6:F0} MB graph)");

// 1. The full pipeline, from image files.
var pathData = ml.Data.LoadFromEnumerable(paths.Select(p => new PathRow { ImagePath = p }).ToArray());
using var pipeline = ml.Transforms.LoadBeitImages()
    .Append(ml.Transforms.BeitImageProcessor(new BeitImageProcessorEstimator.Options { Processor = processor }))
    .Append(classifierEstimator)
    .Fit(pathData);

// The same images, pre-processed once, for the two baselines.
var tensorsIn = paths.Select(p => processor.Preprocess(ImageDecoder.Decode(p))).ToArray();
int length = tensorsIn[0].Length;

// 2. A raw ONNX Runtime session over the same graph.
using var sessionOptions = new SessionOptions
{
    GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    IntraOpNumThreads = threads,
    InterOpNumThreads = 1,
};
using var session = new InferenceSession(onnx, sessionOptions);
var inputValues = tensorsIn.Select(t => OrtValue.CreateTensorValueFromMemory(t, [1, length])).ToArray();
string[] inputNames = [BeitColumns.PixelValues], outputNames = [BeitColumns.Probabilities];
using var runOptions = new RunOptions();

// 3. ML.NET's ApplyOnnxModel on the same graph, fed the pre-processed tensors.
string onnxFile = Path.Combine(Path.GetTempPath(), $"beit-pipeline-bench-{Environment.ProcessId}.onnx");
File.WriteAllBytes(onnxFile, onnx);
var tensorData = ml.Data.LoadFromEnumerable(tensorsIn.Select(t => new TensorRow { PixelValues = t }).ToArray(),
    SchemaDefinitionFor());
using var applyOnnx = ml.Transforms.ApplyOnnxModel(new OnnxOptions
{
    ModelFile = onnxFile,
    InputColumns = [BeitColumns.PixelValues],
    OutputColumns = [BeitColumns.Probabilities],
    IntraOpNumThreads = threads,
    InterOpNumThreads = 1,
}).Fit(tensorData);

// Preprocessing alone is ~100× faster than the model: time it over more images so its slices are not too short to measure.
var contextPaths = Enumerable.Range(0, 8 * perSlice).Select(i => paths[i % paths.Length]).ToArray();
var contextData = ml.Data.LoadFromEnumerable(contextPaths.Select(p => new PathRow { ImagePath = p }).ToArray());

var cases = new (string Name, int Images, Func<int> Run)[]
{
    ("ML.NET pipeline: image files → LoadBeitImages → BeitImageProcessor → BeitClassifier", perSlice, () => ReadScores(pipeline.Transform(pathData), true)),
    ("raw ONNX Runtime session, pre-processed tensors, batch 1", perSlice, () =>
    {
        int n = 0;
        foreach (var input in inputValues)
        {
            using var results = session.Run(runOptions, inputNames, [input], outputNames);
            if (results[0].GetTensorDataAsSpan<float>().Length == 1000) n++;
        }
        return n;
    }),
    ("ML.NET ApplyOnnxModel row by row, pre-processed tensors", perSlice, () => ReadScores(applyOnnx.Transform(tensorData), false)),
    ("(context) LoadBeitImages → BeitImageProcessor only", contextPaths.Length, () => ReadPixels(pipeline.Take(2), contextData)),
};

Console.WriteLine($"Sessions ready after {sw.Elapsed.TotalSeconds:F1} s; warming up...");
foreach (var c in cases) Check(c.Run(), c.Images, c.Name);
var rates = cases.Select(_ => new List<double>()).ToArray();
var ratios = new List<double>();
for (int s = 0; s < slices; s++)
{
    for (int k = 0; k < cases.Length; k++)
    {
        var t = Stopwatch.StartNew();
        Check(cases[k].Run(), cases[k].Images, cases[k].Name);
        rates[k].Add(cases[k].Images / t.Elapsed.TotalSeconds);
    }
    ratios.Add(rates[0][^1] / rates[1][^1]);
    Console.WriteLine($"  slice {s + 1}: " + string.Join(", ", rates.Select(r => $"{r[^1],6:F2}")) + $" img/s; pipeline/raw {ratios[^1]:F3}");
}

Console.WriteLine();
Console.WriteLine($"| images/s, median of {slices} slices (min–max) | {threads} threads |");
Console.WriteLine("|---|---|");
for (int k = 0; k < cases.Length; k++)
    Console.WriteLine($"| {cases[k].Name} | {Median(rates[k]):F2} ({rates[k].Min():F2}–{rates[k].Max():F2}) |");
Console.WriteLine();
Console.WriteLine($"pipeline / raw ORT: {Median(ratios):F3} (median of per-slice ratios; min {ratios.Min():F3}, max {ratios.Max():F3}); target >= 0.9: {(Median(ratios) >= 0.9 ? "met" : "NOT met")}");
Console.WriteLine($"ApplyOnnxModel / raw ORT: {Median(rates[2]) / Median(rates[1]):F3}");
Console.WriteLine($"load average at the end: {LoadAverage()}; total {sw.Elapsed.TotalSeconds:F0} s");
foreach (var v in inputValues) v.Dispose();
File.Delete(onnxFile);
return 0;

int ReadScores(IDataView scored, bool withLabel)
{
    var score = scored.Schema[withLabel ? "Score" : BeitColumns.Probabilities];
    var columns = withLabel ? new[] { score, scored.Schema["PredictedLabel"] } : [score];
    using var cursor = scored.GetRowCursor(columns);
    var getScore = cursor.GetGetter<VBuffer<float>>(score);
    var getLabel = withLabel ? cursor.GetGetter<uint>(columns[1]) : null;
    VBuffer<float> values = default;
    uint label = 0;
    int n = 0;
    while (cursor.MoveNext())
    {
        getScore(ref values);
        getLabel?.Invoke(ref label);
        if (values.Length == 1000) n++;
    }
    return n;
}

int ReadPixels(IEnumerable<ITransformer> stages, IDataView data)
{
    IDataView view = data;
    foreach (var stage in stages) view = stage.Transform(view);
    var column = view.Schema["PixelValues"];
    using var cursor = view.GetRowCursor([column]);
    var getter = cursor.GetGetter<VBuffer<float>>(column);
    VBuffer<float> values = default;
    int n = 0;
    while (cursor.MoveNext())
    {
        getter(ref values);
        if (values.Length == length) n++;
    }
    return n;
}

static void Check(int scored, int expected, string name)
{
    if (scored != expected) throw new InvalidOperationException($"{name}: {scored} of {expected} images scored.");
}

static SchemaDefinition SchemaDefinitionFor()
{
    var definition = SchemaDefinition.Create(typeof(TensorRow));
    var column = definition[nameof(TensorRow.PixelValues)];
    // A variable-size vector: ML.NET feeds those to the graph's [batch, -1] input (a known-size vector would need a 4-D input).
    column.ColumnName = BeitColumns.PixelValues;
    return definition;
}

static double Median(List<double> v)
{
    var s = v.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
}

internal sealed class PathRow
{
    public string ImagePath { get; set; } = "";
}

internal sealed class TensorRow
{
    public float[] PixelValues { get; set; } = [];
}
