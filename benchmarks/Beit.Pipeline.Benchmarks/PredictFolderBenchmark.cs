// beit predict's scoring path (BeitBatchScorer: files decoded and preprocessed in parallel with batched ONNX Runtime
// runs) against a raw ONNX Runtime session fed the same images already preprocessed to tensors, in the same run.
//
//   dotnet run -c Release --project benchmarks/Beit.Pipeline.Benchmarks -- --predict-folder [--photos 240 --slices 5 --batch 8 --threads 2]
//
// The folder: --photos JPEG and PNG files, 300–500 px a side, cut at seeded random places and sizes from the four
// bundled photos. The model: BEiT-base (224×224, patch 16, 12 layers, 1000 labels) with seeded random weights, the
// classifier stage's graph built in memory. Both cases use the same graph, ORT_ENABLE_ALL, T intra-op threads and the
// same batch size; the machine is shared, so they alternate in slices and the median of per-slice ratios is reported.
using System.Diagnostics;
using Beit.Benchmarks;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.OnnxRuntime;
using SkiaSharp;

internal static class PredictFolderBenchmark
{
    public static int Run(string[] args)
    {
        int photos = Arg(args, "--photos", 240), slices = Arg(args, "--slices", 5), batch = Arg(args, "--batch", 8), threads = Arg(args, "--threads", 2);
        Console.WriteLine($"beit predict path vs raw ONNX Runtime; BEiT-base 224 classifier, random weights; batch {batch}; {threads} intra-op threads; " +
                          $"{Environment.ProcessorCount} cores visible; CPU: {CpuFeatures.Current.Describe()}; load average {LoadAverage()}");
        // The per-process temp folder: a killed run's leftovers are swept by the next process.
        string folder = Microsoft.ML.Beit.IO.BeitTempFiles.NewFolder("predict-folder-bench");
        try
        {
            var files = MakePhotos(folder, photos);
            Console.WriteLine($"{files.Length} photos ({files.Count(f => f.EndsWith(".jpg", StringComparison.Ordinal))} JPEG), {files.Sum(f => new FileInfo(f).Length) / 1e6:F1} MB, in {folder}");

            var config = BeitBaseCheckpoint.Config();
            var processor = new BeitImageProcessor { Size = ResizeSize.Exact(224, 224), Resample = PillowResample.Bilinear, DoCenterCrop = false };
            var estimator = new MLContext().Transforms.BeitClassifier(new BeitClassifierEstimator.Options
            {
                Model = BeitModelSource.FromTensors(config, BeitBaseCheckpoint.Tensors(config), "beit-base (random)"),
            });
            var model = new BeitScoringModel(estimator.OnnxModel, BeitScoringTask.ImageClassification,
                new BeitStageConfig { Stage = BeitStages.LoadImages, Column = "ImagePath" }, processor, estimator.StageConfig);
            using var scorer = BeitBatchScorer.Create(model, new BeitBatchScorerOptions { BatchSize = batch, IntraOpNumThreads = threads });

            using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL, IntraOpNumThreads = threads };
            using var session = new InferenceSession(estimator.OnnxModel, options);
            int length = model.Model.InputLength;
            // The same files, preprocessed once, batched as the scorer batches them.
            var batches = files.Chunk(batch).Select(chunk =>
            {
                var pixels = chunk.SelectMany(f => processor.Preprocess(ImageDecoder.Decode(f))).ToArray();
                return (Count: chunk.Length, Value: OrtValue.CreateTensorValueFromMemory(pixels, [chunk.Length, length]));
            }).ToArray();
            using var runOptions = new RunOptions();

            int Scorer()
            {
                int n = 0;
                foreach (var r in scorer.Score(files)) if (r.Probabilities?.Length == 1000) n++;
                return n;
            }
            int Raw()
            {
                int n = 0;
                foreach (var (count, value) in batches)
                {
                    using var results = session.Run(runOptions, [BeitColumns.PixelValues], [value], [BeitColumns.Probabilities]);
                    if (results[0].GetTensorDataAsSpan<float>().Length == count * 1000) n += count;
                }
                return n;
            }

            // Warm-up on a few images.
            foreach (var r in scorer.Score(files.Take(batch))) _ = r;
            using (var warm = session.Run(runOptions, [BeitColumns.PixelValues], [batches[0].Value], [BeitColumns.Probabilities])) { }
            var ratios = new List<double>();
            var (scorerRates, rawRates) = (new List<double>(), new List<double>());
            for (int s = 0; s < slices; s++)
            {
                // Alternate which case goes first, so a drift in load does not favour one.
                double a = 0, b = 0;
                for (int k = 0; k < 2; k++)
                {
                    bool scorerTurn = (s + k) % 2 == 0;
                    var t = Stopwatch.StartNew();
                    int n = scorerTurn ? Scorer() : Raw();
                    if (n != files.Length) throw new InvalidOperationException($"{n} of {files.Length} images scored.");
                    if (scorerTurn) a = n / t.Elapsed.TotalSeconds; else b = n / t.Elapsed.TotalSeconds;
                }
                scorerRates.Add(a);
                rawRates.Add(b);
                ratios.Add(a / b);
                Console.WriteLine($"  slice {s + 1}: beit predict path {a,6:F2} img/s, raw ORT {b,6:F2} img/s, ratio {a / b:F3}; load {LoadAverage()}");
            }
            Console.WriteLine();
            Console.WriteLine($"| images/s, median of {slices} slices of {files.Length} photos (min–max) | batch {batch}, {threads} threads |");
            Console.WriteLine("|---|---|");
            Console.WriteLine($"| beit predict path: files → parallel decode + preprocess → batched ORT | {Median(scorerRates):F2} ({scorerRates.Min():F2}–{scorerRates.Max():F2}) |");
            Console.WriteLine($"| raw ONNX Runtime, same graph, pre-processed tensors | {Median(rawRates):F2} ({rawRates.Min():F2}–{rawRates.Max():F2}) |");
            Console.WriteLine();
            Console.WriteLine($"beit predict / raw ORT: {Median(ratios):F3} (median of per-slice ratios; min {ratios.Min():F3}, max {ratios.Max():F3}); target >= 0.95: {(Median(ratios) >= 0.95 ? "met" : "NOT met")}");
            Console.WriteLine($"load average at the end: {LoadAverage()}");
            foreach (var (_, value) in batches) value.Dispose();
            return 0;
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Seeded crops of the bundled photos, 300–500 px a side (as the photo allows), alternately JPEG (quality 90) and PNG.</summary>
    private static string[] MakePhotos(string folder, int count)
    {
        Directory.CreateDirectory(folder);
        var sources = new[] { "chelsea.png", "astronaut.png", "coffee.png", "camera.png" }
            .Select(p => ImageDecoder.Decode(Path.Combine(AppContext.BaseDirectory, "images", p))).ToArray();
        var random = new Random(17);
        var files = new string[count];
        for (int i = 0; i < count; i++)
        {
            var src = sources[i % sources.Length];
            int h = Math.Min(src.Height, random.Next(300, 501)), w = Math.Min(src.Width, random.Next(300, 501));
            int y0 = random.Next(0, src.Height - h + 1), x0 = random.Next(0, src.Width - w + 1);
            var rgb = new byte[h * w * 3];
            for (int y = 0; y < h; y++) src.Pixels.AsSpan(((y0 + y) * src.Width + x0) * 3, w * 3).CopyTo(rgb.AsSpan(y * w * 3));
            bool jpeg = i % 2 == 0;
            files[i] = Path.Combine(folder, $"photo_{i:D4}{(jpeg ? ".jpg" : ".png")}");
            File.WriteAllBytes(files[i], jpeg ? Jpeg(rgb, w, h) : PngEncoder.EncodeRgb(rgb, w, h));
        }
        return files;
    }

    private static byte[] Jpeg(byte[] rgb, int width, int height)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[width * height * 4];
        for (int p = 0; p < width * height; p++)
        {
            rgba[4 * p] = rgb[3 * p];
            rgba[4 * p + 1] = rgb[3 * p + 1];
            rgba[4 * p + 2] = rgb[3 * p + 2];
            rgba[4 * p + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
        return data.ToArray();
    }

    private static double Median(List<double> v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static int Arg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
    }
}
