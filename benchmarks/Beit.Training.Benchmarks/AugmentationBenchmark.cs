using System.Diagnostics;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Optimization;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Benchmarks;

/// <summary>
/// Time of one training step of the trainer's from-scratch default with no augmentation, with the batched
/// <see cref="BatchAugmentation.RandomResizedCropAndFlip"/> (one grid_sample), and with the per-image loop it replaced
/// (kept here only as the baseline). Variants alternate within every round so they see the same machine load; the
/// table reports medians and ratios to the no-augmentation step measured in the same run.
/// </summary>
internal static class AugmentationBenchmark
{
    private enum Variant { None, Batched, PerImage }

    private const int AloneRepetitions = 20;

    public static void Run(int rounds)
    {
        bool bf16 = CpuFeatures.Current.HasNativeBf16; // what the trainer's automatic default uses on this CPU
        Console.WriteLine($"Augmentation cost per training step (median of {rounds} interleaved rounds; bf16 autocast {(bf16 ? "on" : "off")}, as the trainer's default here)");
        Console.WriteLine();
        Console.WriteLine("| case | batch assembly ms | step, no augmentation ms | batched crop+flip ms (alone) | step with it ms | per-image loop ms (alone) | step with it ms | batched / no-aug step | per-image / no-aug step |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        Measure("28×28 grey, batch 128", side: 28, batch: 128, grey: true, bf16, rounds);
        Measure("64×64 colour, batch 64", side: 64, batch: 64, grey: false, bf16, rounds);
    }

    private static void Measure(string name, int side, int batch, bool grey, bool bf16, int rounds)
    {
        var rng = new Random(0);
        var pixels = new byte[checked(batch * 3 * side * side)];
        rng.NextBytes(pixels);
        if (grey)
            for (int i = 0; i < batch; i++)
                for (int c = 1; c < 3; c++) Array.Copy(pixels, i * 3 * side * side, pixels, (i * 3 + c) * side * side, side * side);
        var data = new BeitTrainingImages(pixels, Enumerable.Range(0, batch).Select(i => i % 10).ToArray(), side, side, Enumerable.Range(0, 10).Select(i => $"c{i}").ToList());
        var config = BeitTrainingDefaults.Config(side, 0.05);
        config.NumLabels = 10;
        random.manual_seed(0);
        var model = new BeitForImageClassification(config);
        model.train();
        var settings = LayerwiseParameterGroups.Build(model.named_parameters().Select(p => (p.name, p.parameter)), config.NumHiddenLayers, 1.0, 0.05);
        using var optimizer = new BeitAdamW(settings);
        var indices = Enumerable.Range(0, batch).ToArray();
        var crop = new BatchAugmentation.CropSettings(0.35);

        Tensor Augment(Variant v, Tensor x, Random r) => v switch
        {
            Variant.Batched => BatchAugmentation.RandomResizedCropAndFlip(x, null, side, side, crop, 0.5, r).Images,
            Variant.PerImage => PerImageCropAndFlip(x, side, crop, 0.5, r),
            _ => x,
        };
        double Step(Variant v)
        {
            using var scope = NewDisposeScope();
            using var autocast = bf16 ? BeitAutocast.Enable(ScalarType.BFloat16) : null;
            var (x, y) = data.Batch(indices);
            x = Augment(v, x, new Random(1));
            var loss = model.forward(x, y).Loss!;
            optimizer.ZeroGrad();
            loss.backward();
            optimizer.Step(1e-4);
            return loss.item<float>();
        }
        double TimeMs(Action a)
        {
            var sw = Stopwatch.StartNew();
            a();
            return sw.Elapsed.TotalMilliseconds;
        }

        foreach (var v in Enum.GetValues<Variant>()) Step(v); // warm-up
        var steps = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());
        var alone = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
        {
            foreach (var v in Enum.GetValues<Variant>())
            {
                steps[v].Add(TimeMs(() => Step(v)));
                // Many repetitions per sample: one alone is shorter than a scheduler time slice on a loaded machine.
                alone[v].Add(TimeMs(() =>
                {
                    for (int k = 0; k < AloneRepetitions; k++)
                    {
                        using var scope = NewDisposeScope();
                        var (x, _) = data.Batch(indices);
                        Augment(v, x, new Random(k)).Dispose();
                    }
                }) / AloneRepetitions);
            }
        }
        double batchMs = Median(alone[Variant.None]), none = Median(steps[Variant.None]);
        double batchedAlone = Median(alone[Variant.Batched]) - batchMs, perImageAlone = Median(alone[Variant.PerImage]) - batchMs;
        double batched = Median(steps[Variant.Batched]), perImage = Median(steps[Variant.PerImage]);
        Console.WriteLine($"| {name} | {batchMs:F1} | {none:F0} | {batchedAlone:F1} | {batched:F0} | {perImageAlone:F1} | {perImage:F0} | {batched / none:F3}× | {perImage / none:F2}× |");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    // The implementation BatchAugmentation had before it went batched: one antialiased bicubic interpolate per image.
    private static Tensor PerImageCropAndFlip(Tensor images, int size, BatchAugmentation.CropSettings settings, double flipProbability, Random rng)
    {
        using var scope = NewDisposeScope();
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var outImages = new List<Tensor>();
        for (int i = 0; i < images.shape[0]; i++)
        {
            var (top, left, ch, cw) = BatchAugmentation.SampleCrop(h, w, settings, rng);
            bool flip = rng.NextDouble() < flipProbability;
            var img = nn.functional.interpolate(images[i..(i + 1), .., top..(top + ch), left..(left + cw)], [size, size],
                mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
            outImages.Add(flip ? img.flip(3) : img);
        }
        return cat(outImages, 0).clamp(images.min(), images.max()).MoveToOuterDisposeScope();
    }
}
