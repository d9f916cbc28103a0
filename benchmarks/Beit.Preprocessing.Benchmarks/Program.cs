using System.Diagnostics;
using Beit.Preprocessing.Benchmarks;
using Microsoft.ML;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

// Decode + preprocess the bundled photos to 224x224, single-thread and on every core, against baselines measured in
// the same run. Usage: dotnet run -c Release --project benchmarks/Beit.Preprocessing.Benchmarks [-- --seconds 3]
double seconds = args.Length >= 2 && args[0] == "--seconds" ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
string imageDir = Path.Combine(AppContext.BaseDirectory, "images");
string[] photos = Directory.GetFiles(imageDir, "*.png").Order().ToArray();
int cores = Environment.ProcessorCount;

Console.WriteLine($"Beit.Preprocessing.Benchmarks: {photos.Length} photos ({string.Join(", ", photos.Select(p => { var i = ImageDecoder.Decode(p); return $"{Path.GetFileName(p)} {i.Width}x{i.Height}"; }))})");
Console.WriteLine($".NET {Environment.Version}, {cores} logical cores, {seconds:F1} s per measurement, AVX2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}");
Console.WriteLine();

var seed = new BeitImageProcessor();                                                                          // v4.34 defaults
var hub = new BeitImageProcessor { Size = ResizeSize.Exact(224, 224), Resample = PillowResample.Bilinear, DoCenterCrop = false }; // beit-base-patch16-224
var decoded = photos.Select(p => ImageDecoder.Decode(p)).ToArray();
var cases = new List<(string Name, Action<int> PerImage, bool Parallel)>
{
    ("ours: decode + seed processor (256 bicubic, crop 224)", i => seed.Preprocess(ImageDecoder.Decode(photos[i % photos.Length]), Bench.Buffer()), true),
    ("ours: decode + hub processor (224 bilinear, no crop)", i => hub.Preprocess(ImageDecoder.Decode(photos[i % photos.Length]), Bench.Buffer()), true),
    ("  of which decode only", i => ImageDecoder.Decode(photos[i % photos.Length]), true),
    ("  of which seed processor only (already decoded)", i => seed.Preprocess(decoded[i % decoded.Length], Bench.Buffer()), true),
    ("baseline: decode + naive float resampler (seed options)", i => NaiveProcessor.Preprocess(ImageDecoder.Decode(photos[i % photos.Length]), 256, 256, 224, Bench.Buffer()), true),
};

// ML.NET's own image path: LoadImages -> ResizeImages(Fill: nearest neighbour, so not even equivalent) -> ExtractPixels.
var ml = new MLContext(seed: 1);
var rows = photos.Select(p => new PathRow { Path = p }).ToArray();
var pipeline = ml.Transforms.LoadImages("Image", imageDir, nameof(PathRow.Path))
    .Append(ml.Transforms.ResizeImages("Image", 224, 224, resizing: ImageResizingEstimator.ResizingKind.Fill))
    .Append(ml.Transforms.ExtractPixels("pixel_values", "Image", interleavePixelColors: false, scaleImage: 1f / 255));
var model = pipeline.Fit(ml.Data.LoadFromEnumerable(rows));
var engine = ml.Model.CreatePredictionEngine<PathRow, PixelRow>(model); // not thread-safe: single-thread only
cases.Add(("baseline: ML.NET LoadImages + ResizeImages + ExtractPixels", i => engine.Predict(rows[i % rows.Length]), false));

// The machine is shared, so load drifts: every case is measured in short slices, round-robin, and the median is
// reported (with the range), which keeps ratios between cases fair.
int rounds = 5;
double slice = seconds / rounds;
var single = cases.Select(_ => new List<double>()).ToArray();
var all = cases.Select(_ => new List<double>()).ToArray();
foreach (var c in cases) { for (int i = 0; i < 8; i++) c.PerImage(i); } // warm-up (JIT, tables)
for (int r = 0; r < rounds; r++)
{
    for (int k = 0; k < cases.Count; k++)
    {
        single[k].Add(Bench.ImagesPerSecond(slice, cases[k].PerImage));
        if (cases[k].Parallel) all[k].Add(Bench.ImagesPerSecondParallel(slice, cases[k].PerImage, cores));
    }
}

static double Median(List<double> v) { var s = v.Order().ToArray(); return s.Length == 0 ? double.NaN : s[s.Length / 2]; }
static string Cell(List<double> v) => v.Count == 0 ? $"{"-",22}" : $"{Median(v),7:F0} ({v.Min(),4:F0}-{v.Max(),4:F0})".PadLeft(22);

Console.WriteLine($"  {"images/s, median of " + rounds + " slices (min-max)",-58} {"1 thread",22} {cores + " threads",22}");
for (int k = 0; k < cases.Count; k++) Console.WriteLine($"  {cases[k].Name,-58} {Cell(single[k])} {Cell(all[k])}");
Console.WriteLine();
int naive = 4, mlnet = 5;
Console.WriteLine($"ours (seed) vs naive float resampler: {Median(single[0]) / Median(single[naive]):F1}x single-thread, {Median(all[0]) / Median(all[naive]):F1}x all-core");
Console.WriteLine($"ours (seed) vs ML.NET ResizeImages path: {Median(single[0]) / Median(single[mlnet]):F1}x single-thread");
Console.WriteLine($"target: >= 120 img/s all-core (transformers.js preprocessing: 30 img/s): {(Median(all[0]) >= 120 ? "met" : "NOT met")} ({Median(all[0]):F0} img/s)");

namespace Beit.Preprocessing.Benchmarks
{
    /// <summary>An input row of the ML.NET baseline.</summary>
    public sealed class PathRow
    {
        /// <summary>The image path.</summary>
        public string Path { get; set; } = "";
    }

    /// <summary>An output row of the ML.NET baseline.</summary>
    public sealed class PixelRow
    {
        /// <summary>The CHW pixels.</summary>
        [VectorType(3 * 224 * 224)]
        public float[] pixel_values { get; set; } = [];
    }

    internal static class Bench
    {
        [ThreadStatic] private static float[]? t_buffer;

        /// <summary>A per-thread output buffer, as an ML.NET row mapper would reuse one.</summary>
        public static float[] Buffer() => t_buffer ??= new float[3 * 224 * 224];

        public static double ImagesPerSecond(double seconds, Action<int> perImage)
        {
            var sw = Stopwatch.StartNew();
            int n = 0;
            while (sw.Elapsed.TotalSeconds < seconds) perImage(n++);
            return n / sw.Elapsed.TotalSeconds;
        }

        public static double ImagesPerSecondParallel(double seconds, Action<int> perImage, int threads)
        {
            var sw = Stopwatch.StartNew();
            int n = 0;
            var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
            {
                while (sw.Elapsed.TotalSeconds < seconds) perImage(Interlocked.Increment(ref n));
            })).ToArray();
            foreach (var w in workers) w.Start();
            foreach (var w in workers) w.Join();
            return n / sw.Elapsed.TotalSeconds;
        }
    }
}
