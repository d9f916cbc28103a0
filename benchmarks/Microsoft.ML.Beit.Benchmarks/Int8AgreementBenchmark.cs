using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Benchmarks;

/// <summary>
/// Int8 against float32 on a trained classifier and a labelled IDX test set (the 10,000 Fashion-MNIST test images for
/// the model <c>beit demo --full --checkpoint-dir</c> writes): top-1 agreement, mean and largest absolute probability
/// difference, and each graph's accuracy. Both graphs are exported from the same checkpoint and fed the same
/// preprocessed pixels, so every difference is the quantization's.
/// </summary>
internal static class Int8AgreementBenchmark
{
    public static int Run(string checkpoint, string idxFolder, int threads)
    {
        Console.WriteLine($"CPU instruction sets: {CpuFeatures.Current.Describe()}; load average at start: {QuantizedBenchmark.LoadAverage()}");
        var (pixels, labels, height, width) = ReadIdx(idxFolder, "t10k");
        Console.WriteLine($"{labels.Length:N0} test images {height}×{width} from {idxFolder}; checkpoint {checkpoint}");
        var config = BeitConfig.Load(checkpoint);
        var tensors = BeitCheckpoint.ReadTensors(checkpoint);
        var processor = File.Exists(Path.Combine(checkpoint, "preprocessor_config.json"))
            ? BeitImageProcessorEstimator.LoadProcessor(checkpoint)
            : BeitImageProcessorEstimator.ForConfig(config);

        var sw = Stopwatch.StartNew();
        var fp32 = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification);
        var int8 = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification,
            new BeitOnnxExportOptions { Precision = BeitOnnxPrecision.Int8 });
        Console.WriteLine($"Exported in {sw.Elapsed.TotalSeconds:F1} s: ONNX float32 {fp32.Length / 1e6:F2} MB, int8 {int8.Length / 1e6:F2} MB ({(double)fp32.Length / int8.Length:F2}× smaller)");

        var options = new BeitOnnxSessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
        using var a = new BeitOnnxSession(fp32, options);
        using var b = new BeitOnnxSession(int8, options);
        int classes = config.NumLabels, n = labels.Length, agree = 0, correctA = 0, correctB = 0;
        double sumAbs = 0, maxAbs = 0;
        const int batch = 100;
        var size = new PixelSize(height, width);
        int plane = height * width;
        long tA = 0, tB = 0;
        for (int start = 0; start < n; start += batch)
        {
            int count = Math.Min(batch, n - start);
            var images = new RgbImage[count];
            for (int i = 0; i < count; i++)
            {
                var rgb = new byte[3 * plane];
                var grey = pixels.AsSpan((start + i) * plane, plane);
                // RgbImage holds interleaved RGB rows (as decoded from a file): a grey pixel is three equal bytes.
                for (int k = 0; k < plane; k++) rgb[3 * k] = rgb[3 * k + 1] = rgb[3 * k + 2] = grey[k];
                images[i] = new RgbImage(size, rgb);
            }
            var input = processor.PreprocessBatch(images);
            long t0 = Stopwatch.GetTimestamp();
            var pa = Softmax(a.Run(input, count, outputNames: ["logits"])["logits"].ToFloatArray(), classes);
            long t1 = Stopwatch.GetTimestamp();
            var pb = Softmax(b.Run(input, count, outputNames: ["logits"])["logits"].ToFloatArray(), classes);
            tA += t1 - t0;
            tB += Stopwatch.GetTimestamp() - t1;
            for (int i = 0; i < count; i++)
            {
                int ta = ArgMax(pa, i * classes, classes), tb = ArgMax(pb, i * classes, classes);
                if (ta == tb) agree++;
                if (ta == labels[start + i]) correctA++;
                if (tb == labels[start + i]) correctB++;
                for (int c = 0; c < classes; c++)
                {
                    double d = Math.Abs(pa[i * classes + c] - pb[i * classes + c]);
                    sumAbs += d;
                    maxAbs = Math.Max(maxAbs, d);
                }
            }
        }
        Console.WriteLine();
        Console.WriteLine("| Check | Result |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| top-1 agreement, int8 vs float32 | {100.0 * agree / n:F2} % ({agree:N0} / {n:N0}) |");
        Console.WriteLine($"| mean absolute probability difference (all {classes} classes) | {sumAbs / ((double)n * classes):E2} (max {maxAbs:F4}) |");
        Console.WriteLine($"| test accuracy | float32 {100.0 * correctA / n:F2} %, int8 {100.0 * correctB / n:F2} % |");
        Console.WriteLine($"| scoring time (this run, batch {batch}, {threads} threads) | float32 {tA / (double)Stopwatch.Frequency:F1} s, int8 {tB / (double)Stopwatch.Frequency:F1} s |");
        Console.WriteLine($"Load average at end: {QuantizedBenchmark.LoadAverage()}");
        return agree * 1000L >= 995L * n ? 0 : 1;
    }

    private static float[] Softmax(float[] logits, int classes)
    {
        var p = new float[logits.Length];
        for (int r = 0; r < logits.Length; r += classes)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < classes; c++) max = Math.Max(max, logits[r + c]);
            double sum = 0;
            for (int c = 0; c < classes; c++) sum += Math.Exp(logits[r + c] - max);
            for (int c = 0; c < classes; c++) p[r + c] = (float)(Math.Exp(logits[r + c] - max) / sum);
        }
        return p;
    }

    private static int ArgMax(float[] v, int offset, int count)
    {
        int best = 0;
        for (int c = 1; c < count; c++) if (v[offset + c] > v[offset + best]) best = c;
        return best;
    }

    // The IDX format (LeCun et al.): a big-endian magic with the element type and rank, the dimensions, then the data.
    private static (byte[] Pixels, byte[] Labels, int Height, int Width) ReadIdx(string folder, string split)
    {
        var images = Read(Path.Combine(folder, $"{split}-images-idx3-ubyte.gz"), 3);
        var labels = Read(Path.Combine(folder, $"{split}-labels-idx1-ubyte.gz"), 1);
        if (images.Dims[0] != labels.Dims[0]) throw new InvalidDataException($"{folder}: {images.Dims[0]} images but {labels.Dims[0]} labels.");
        return (images.Data, labels.Data, images.Dims[1], images.Dims[2]);
    }

    private static (int[] Dims, byte[] Data) Read(string path, int rank)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        Span<byte> word = stackalloc byte[4];
        gz.ReadExactly(word);
        if (word[0] != 0 || word[1] != 0 || word[2] != 8 || word[3] != rank) throw new InvalidDataException($"{path}: not an unsigned-byte IDX file of rank {rank}.");
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            gz.ReadExactly(word);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] <= 0 || dims[i] > 1_000_000) throw new InvalidDataException($"{path}: dimension {dims[i]} out of range.");
            total = checked(total * dims[i]);
        }
        if (total > 100_000_000) throw new InvalidDataException($"{path}: {total} bytes is more than this benchmark reads.");
        var data = new byte[total];
        gz.ReadExactly(data);
        return (dims, data);
    }
}
