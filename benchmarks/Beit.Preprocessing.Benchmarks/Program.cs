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
var results = new List<(string Name, double Single, double All)>();

double Single(Action<int> perImage) => Bench.ImagesPerSecond(seconds, perImage);
double All(Action<int> perImage) => Bench.ImagesPerSecondParallel(seconds, perImage, cores);

void Row(string name, Action<int> perImage, bool parallel = true)
{
    double s = Single(perImage), a = parallel ? All(perImage) : double.NaN;
    results.Add((name, s, a));
    Console.WriteLine($"  {name,-58} {s,8:F1} img/s {(parallel ? $"{a,8:F1} img/s" : "       -")}");
}

Console.WriteLine($"  {"",-58} {"1 thread",14} {$"{cores} threads",14}");
Row("ours: decode + seed processor (256 bicubic, crop 224)", i =>
{
    var buffer = Bench.Buffer();
    seed.Preprocess(ImageDecoder.Decode(photos[i % photos.Length]), buffer);
});
Row("ours: decode + hub processor (224 bilinear, no crop)", i =>
{
    var buffer = Bench.Buffer();
    hub.Preprocess(ImageDecoder.Decode(photos[i % photos.Length]), buffer);
});
Row("  of which decode only", i => ImageDecoder.Decode(photos[i % photos.Length]));
Row("  of which seed processor only (already decoded)", i => seed.Preprocess(decoded[i % decoded.Length], Bench.Buffer()));
Row("baseline: decode + naive float resampler (same options as seed)", i =>
{
    var img = ImageDecoder.Decode(photos[i % photos.Length]);
    NaiveProcessor.Preprocess(img, 256, 256, 224, Bench.Buffer());
});

// ML.NET's own image path: LoadImages -> ResizeImages(Fill: nearest neighbour, so not even equivalent) -> ExtractPixels.
var ml = new MLContext(seed: 1);
var rows = photos.Select(p => new PathRow { Path = p }).ToArray();
var pipeline = ml.Transforms.LoadImages("Image", imageDir, nameof(PathRow.Path))
    .Append(ml.Transforms.ResizeImages("Image", 224, 224, resizing: ImageResizingEstimator.ResizingKind.Fill))
    .Append(ml.Transforms.ExtractPixels("pixel_values", "Image", interleavePixelColors: false, scaleImage: 1f / 255));
var model = pipeline.Fit(ml.Data.LoadFromEnumerable(rows));
var engine = ml.Model.CreatePredictionEngine<PathRow, PixelRow>(model);
Row("baseline: ML.NET LoadImages + ResizeImages + ExtractPixels", i => engine.Predict(rows[i % rows.Length]), parallel: false);

Console.WriteLine();
var ours = results[0];
var naive = results.First(r => r.Name.StartsWith("baseline: decode + naive"));
var mlnet = results.First(r => r.Name.StartsWith("baseline: ML.NET"));
Console.WriteLine($"ours (seed) vs naive float resampler: {ours.Single / naive.Single:F1}x single-thread, {ours.All / naive.All:F1}x all-core");
Console.WriteLine($"ours (seed) vs ML.NET ResizeImages path: {ours.Single / mlnet.Single:F1}x single-thread");
Console.WriteLine($"target: >= 120 img/s all-core (transformers.js preprocessing: 30 img/s): {(ours.All >= 120 ? "met" : "NOT met")} ({ours.All:F0} img/s)");

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
            for (int i = 0; i < 8; i++) perImage(i); // warm-up (JIT, tables)
            var sw = Stopwatch.StartNew();
            int n = 0;
            while (sw.Elapsed.TotalSeconds < seconds) perImage(n++);
            return n / sw.Elapsed.TotalSeconds;
        }

        public static double ImagesPerSecondParallel(double seconds, Action<int> perImage, int threads)
        {
            Parallel.For(0, 8 * threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, perImage);
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
