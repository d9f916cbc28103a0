using System.Collections.Concurrent;
using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Training.ImageClassification;

/// <summary>
/// Reads a Model Builder-style image folder: one subfolder per class (its name is the label), images inside.
/// Images are decoded as Pillow's <c>convert("RGB")</c> does and resized once, Pillow-exactly, to the training size.
/// </summary>
public static class BeitImageFolder
{
    /// <summary>File extensions read as images.</summary>
    public static readonly IReadOnlySet<string> ImageExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>What <see cref="Load"/> read.</summary>
    /// <param name="Images">The decoded, resized images with their class ids (classes in ordinal order of folder names).</param>
    /// <param name="Skipped">Files that could not be decoded, with the reason; they are left out of <paramref name="Images"/>.</param>
    /// <param name="ClassCounts">Images per class.</param>
    public sealed record Result(BeitTrainingImages Images, IReadOnlyList<(string Path, string Reason)> Skipped, IReadOnlyDictionary<string, int> ClassCounts)
    {
        /// <summary>Warnings about the class balance: classes with fewer than two images, or a largest/smallest ratio above 3.</summary>
        public IReadOnlyList<string> BalanceWarnings()
        {
            var w = new List<string>();
            foreach (var (c, n) in ClassCounts.Where(kv => kv.Value < 2))
                w.Add($"class '{c}' has {n} image(s); at least 2 are needed to validate it.");
            int max = ClassCounts.Values.Max(), min = ClassCounts.Values.Min();
            if (min > 0 && max > 3 * min)
                w.Add($"classes are imbalanced: {ClassCounts.First(kv => kv.Value == max).Key} has {max} images, {ClassCounts.First(kv => kv.Value == min).Key} has {min}.");
            return w;
        }
    }

    /// <summary>Loads every image under <paramref name="folder"/>'s class subfolders at <paramref name="size"/>×<paramref name="size"/>.</summary>
    /// <param name="folder">The folder of class subfolders.</param>
    /// <param name="size">Side of the square training images.</param>
    /// <param name="resample">Pillow filter for the resize.</param>
    /// <param name="imageMean">Normalisation mean the model expects (Hugging Face BEiT: 0.5).</param>
    /// <param name="imageStd">Normalisation standard deviation the model expects.</param>
    /// <param name="progress">Receives the number of files read so far.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">Fewer than two class subfolders hold images.</exception>
    public static Result Load(string folder, int size, PillowResample resample = PillowResample.Bicubic,
        float[]? imageMean = null, float[]? imageStd = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Image folder '{folder}' does not exist.");
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        var classes = Directory.GetDirectories(folder)
            .Select(d => (Name: Path.GetFileName(d), Files: Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories)
                .Where(f => ImageExtensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToArray()))
            .Where(c => c.Files.Length > 0)
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToList();
        if (classes.Count < 2)
            throw new InvalidDataException($"'{folder}' needs at least two subfolders of images (one per class); found {classes.Count}.");

        var files = classes.SelectMany((c, id) => c.Files.Select(f => (Path: f, Label: id))).ToArray();
        return Decode(files, classes.Select(c => c.Name).ToArray(), size, resample, imageMean, imageStd, progress, cancellationToken);
    }

    /// <summary>
    /// Loads every image under <paramref name="folder"/> (all subfolders, no labels) for pre-training; they form one
    /// class named <c>image</c>.
    /// </summary>
    public static Result LoadUnlabeled(string folder, int size, PillowResample resample = PillowResample.Bicubic,
        float[]? imageMean = null, float[]? imageStd = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Image folder '{folder}' does not exist.");
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => ImageExtensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal)
            .Select(f => (Path: f, Label: 0)).ToArray();
        if (files.Length == 0) throw new InvalidDataException($"'{folder}' holds no images ({string.Join(", ", ImageExtensions)}).");
        return Decode(files, ["image"], size, resample, imageMean, imageStd, progress, cancellationToken);
    }

    private static Result Decode((string Path, int Label)[] files, string[] names, int size, PillowResample resample,
        float[]? imageMean, float[]? imageStd, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        int plane = size * size;
        var pixels = new byte[files.Length * 3 * plane];
        var ok = new bool[files.Length];
        var skipped = new ConcurrentBag<(string, string)>();
        int done = 0;
        Parallel.For(0, files.Length, new ParallelOptions { CancellationToken = cancellationToken }, i =>
        {
            try
            {
                var image = ImageDecoder.Decode(files[i].Path);
                var resized = image.Width == size && image.Height == size ? image : PillowResampler.Resize(image, new PixelSize(size, size), resample);
                // HWC → CHW.
                var src = resized.Pixels;
                var dst = pixels.AsSpan(i * 3 * plane, 3 * plane);
                for (int p = 0; p < plane; p++)
                {
                    dst[p] = src[3 * p];
                    dst[plane + p] = src[3 * p + 1];
                    dst[2 * plane + p] = src[3 * p + 2];
                }
                ok[i] = true;
            }
            catch (ImageDecodingException e)
            {
                skipped.Add((files[i].Path, e.Message));
            }
            progress?.Report(Interlocked.Increment(ref done));
        });

        var keep = Enumerable.Range(0, files.Length).Where(i => ok[i]).ToArray();
        var all = new BeitTrainingImages(pixels, files.Select(f => f.Label).ToArray(), size, size, names)
        {
            ImageMean = imageMean ?? [0.5f, 0.5f, 0.5f],
            ImageStd = imageStd ?? [0.5f, 0.5f, 0.5f],
        };
        var images = keep.Length == files.Length ? all : all.Subset(keep);
        var counts = names.Select((n, id) => (n, images.Labels.Count(l => l == id))).ToDictionary(t => t.n, t => t.Item2);
        return new Result(images, skipped.OrderBy(s => s.Item1, StringComparer.Ordinal).ToList(), counts);
    }
}
