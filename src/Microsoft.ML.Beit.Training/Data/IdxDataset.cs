using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>
/// Images and labels in the IDX format of MNIST and Fashion-MNIST (<c>*-images-idx3-ubyte[.gz]</c> with
/// <c>*-labels-idx1-ubyte[.gz]</c>): 8-bit grayscale images, one byte label each.
/// </summary>
public sealed class IdxDataset
{
    private IdxDataset(byte[] pixels, byte[] labels, int count, int height, int width)
    {
        Pixels = pixels;
        Labels = labels;
        Count = count;
        Height = height;
        Width = width;
    }

    /// <summary>All images, row-major, one after another (<c>Count·Height·Width</c> bytes).</summary>
    public byte[] Pixels { get; }
    /// <summary>One label per image.</summary>
    public byte[] Labels { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Image height.</summary>
    public int Height { get; }
    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>The pixels of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(index * Height * Width, Height * Width);

    /// <summary>
    /// Loads <c>{prefix}-images-idx3-ubyte[.gz]</c> and <c>{prefix}-labels-idx1-ubyte[.gz]</c> from
    /// <paramref name="folder"/> (e.g. prefix <c>train</c> or <c>t10k</c>).
    /// </summary>
    public static IdxDataset Load(string folder, string prefix)
    {
        string images = Find(folder, $"{prefix}-images-idx3-ubyte");
        string labels = Find(folder, $"{prefix}-labels-idx1-ubyte");
        var img = ReadAll(images);
        var lab = ReadAll(labels);
        if (img.Length < 16 || BinaryPrimitives.ReadInt32BigEndian(img) != 2051)
            throw new InvalidDataException($"'{images}' is not an IDX image file (magic 2051).");
        if (lab.Length < 8 || BinaryPrimitives.ReadInt32BigEndian(lab) != 2049)
            throw new InvalidDataException($"'{labels}' is not an IDX label file (magic 2049).");
        int n = BinaryPrimitives.ReadInt32BigEndian(img.AsSpan(4));
        int h = BinaryPrimitives.ReadInt32BigEndian(img.AsSpan(8));
        int w = BinaryPrimitives.ReadInt32BigEndian(img.AsSpan(12));
        int nl = BinaryPrimitives.ReadInt32BigEndian(lab.AsSpan(4));
        if (n != nl) throw new InvalidDataException($"'{images}' has {n} images but '{labels}' has {nl} labels.");
        if (n < 0 || h <= 0 || w <= 0 || img.LongLength != 16L + (long)n * h * w || lab.LongLength != 8L + n)
            throw new InvalidDataException($"'{images}' or '{labels}' is truncated or has an inconsistent header.");
        return new IdxDataset(img[16..], lab[8..], n, h, w);
    }

    /// <summary>Class names of Fashion-MNIST, by label.</summary>
    public static readonly IReadOnlyList<string> FashionMnistClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Whether <paramref name="folder"/> holds <c>{prefix}-images-idx3-ubyte[.gz]</c>.</summary>
    public static bool Exists(string folder, string prefix) =>
        File.Exists(Path.Combine(folder, $"{prefix}-images-idx3-ubyte.gz")) || File.Exists(Path.Combine(folder, $"{prefix}-images-idx3-ubyte"));

    /// <summary>
    /// The images as RGB training images (grayscale replicated, as Pillow's <c>convert("RGB")</c>), named by
    /// <paramref name="classNames"/> (default: the label digits).
    /// </summary>
    public BeitTrainingImages ToTrainingImages(IReadOnlyList<string>? classNames = null)
    {
        int classes = Labels.Length == 0 ? 1 : Labels.Max() + 1;
        classNames ??= Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return BeitTrainingImages.FromGrayscale(Pixels, Labels.Select(l => (int)l).ToArray(), Height, Width, classNames);
    }

    /// <summary>The first <paramref name="count"/> images of each class (in file order), or all when a class has fewer.</summary>
    public IdxDataset PerClassSubset(int count)
    {
        var taken = new List<int>();
        var seen = new Dictionary<byte, int>();
        for (int i = 0; i < Count; i++)
        {
            seen.TryGetValue(Labels[i], out int c);
            if (c < count) { taken.Add(i); seen[Labels[i]] = c + 1; }
        }
        return Select(taken);
    }

    /// <summary>The images at <paramref name="indices"/>, in that order.</summary>
    public IdxDataset Select(IReadOnlyList<int> indices)
    {
        int size = Height * Width;
        var pixels = new byte[indices.Count * size];
        var labels = new byte[indices.Count];
        for (int k = 0; k < indices.Count; k++)
        {
            Image(indices[k]).CopyTo(pixels.AsSpan(k * size, size));
            labels[k] = Labels[indices[k]];
        }
        return new IdxDataset(pixels, labels, indices.Count, Height, Width);
    }

    private static string Find(string folder, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem, stem.Replace("-idx", ".idx", StringComparison.Ordinal) })
        {
            string p = Path.Combine(folder, name);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"No '{stem}[.gz]' in '{folder}'.");
    }

    private static byte[] ReadAll(string path)
    {
        // A regular file only (a FIFO named like an IDX file would block forever).
        FileStream file;
        try
        {
            file = Microsoft.ML.Beit.IO.BeitFiles.OpenRead(path, int.MaxValue);
        }
        catch (Microsoft.ML.Beit.IO.BeitFiles.RefusedException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}.", e);
        }
        using var owned = file;
        using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var ms = new MemoryStream();
        try
        {
            s.CopyTo(ms);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a valid gzip file: {e.Message}", e);
        }
        return ms.ToArray();
    }
}
