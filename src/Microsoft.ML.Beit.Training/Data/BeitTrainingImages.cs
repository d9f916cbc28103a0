using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Training images (labelled for classification; labels ignored by pre-training) held in memory at one size, as 8-bit CHW pixels (3 channels), with the mean/std the
/// model normalises them with. Batches are built from it on the fly, so memory stays at one byte per value.
/// </summary>
public sealed class BeitTrainingImages
{
    /// <summary>Creates a set from <c>count·3·height·width</c> CHW bytes and one class id per image.</summary>
    public BeitTrainingImages(byte[] pixels, int[] labels, int height, int width, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (height <= 0 || width <= 0) throw new ArgumentException("Image sides must be positive.");
        if (pixels.LongLength != (long)labels.Length * 3 * height * width)
            throw new ArgumentException($"Expected {labels.Length}·3·{height}·{width} bytes, got {pixels.LongLength}.");
        if (classNames.Count < 1) throw new ArgumentException("At least one class is needed.");
        foreach (var l in labels)
            if ((uint)l >= (uint)classNames.Count) throw new ArgumentException($"Label {l} is not in 0..{classNames.Count - 1}.");
        Pixels = pixels;
        Labels = labels;
        Height = height;
        Width = width;
        ClassNames = classNames;
    }

    private float[]? _normalized;

    /// <summary>
    /// A set of already-normalised float pixels (<c>count·3·height·width</c>, CHW), for data that did not come from
    /// 8-bit images (for example reference tensors).
    /// </summary>
    public static BeitTrainingImages FromNormalizedPixels(float[] pixels, int[] labels, int height, int width, IReadOnlyList<string> classNames)
    {
        if (pixels.LongLength != (long)labels.Length * 3 * height * width)
            throw new ArgumentException($"Expected {labels.Length}·3·{height}·{width} values, got {pixels.LongLength}.");
        return new BeitTrainingImages(new byte[pixels.Length], labels, height, width, classNames) { _normalized = pixels };
    }

    /// <summary>CHW bytes of every image, one after another.</summary>
    public byte[] Pixels { get; }
    /// <summary>Class id per image.</summary>
    public int[] Labels { get; }
    /// <summary>Image height.</summary>
    public int Height { get; }
    /// <summary>Image width.</summary>
    public int Width { get; }
    /// <summary>Class names by id.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;
    /// <summary>Per-channel mean used for normalisation (Hugging Face BEiT default 0.5).</summary>
    public float[] ImageMean { get; init; } = [0.5f, 0.5f, 0.5f];
    /// <summary>Per-channel standard deviation used for normalisation.</summary>
    public float[] ImageStd { get; init; } = [0.5f, 0.5f, 0.5f];

    /// <summary>From grayscale images (<c>count·height·width</c> bytes), replicated to RGB as Pillow's <c>convert("RGB")</c> does.</summary>
    public static BeitTrainingImages FromGrayscale(ReadOnlySpan<byte> gray, int[] labels, int height, int width, IReadOnlyList<string> classNames)
    {
        int plane = height * width;
        var pixels = new byte[labels.Length * 3 * plane];
        for (int i = 0; i < labels.Length; i++)
        {
            var src = gray.Slice(i * plane, plane);
            for (int c = 0; c < 3; c++) src.CopyTo(pixels.AsSpan((i * 3 + c) * plane, plane));
        }
        return new BeitTrainingImages(pixels, labels, height, width, classNames);
    }

    /// <summary>
    /// The same images with every channel set to the luma Pillow's <c>convert("L")</c> computes (ITU-R 601-2, 16-bit fixed
    /// point); already normalised images are converted with the same weights.
    /// </summary>
    internal BeitTrainingImages ToLuminance()
    {
        int plane = Height * Width;
        var pixels = new byte[Pixels.Length];
        var normalized = _normalized is null ? null : new float[_normalized.Length];
        for (int i = 0; i < Count; i++)
        {
            int o = i * 3 * plane;
            for (int p = 0; p < plane; p++)
            {
                int r = Pixels[o + p], g = Pixels[o + plane + p], b = Pixels[o + 2 * plane + p];
                pixels[o + p] = pixels[o + plane + p] = pixels[o + 2 * plane + p] = (byte)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
                if (normalized is not null)
                    normalized[o + p] = normalized[o + plane + p] = normalized[o + 2 * plane + p] =
                        Luma[0] * _normalized![o + p] + Luma[1] * _normalized[o + plane + p] + Luma[2] * _normalized[o + 2 * plane + p];
            }
        }
        return new BeitTrainingImages(pixels, Labels, Height, Width, ClassNames) { ImageMean = ImageMean, ImageStd = ImageStd, _normalized = normalized };
    }

    /// <summary>The ITU-R 601-2 luma weights of red, green and blue (Pillow's <c>convert("L")</c>).</summary>
    internal static readonly float[] Luma = [0.299f, 0.587f, 0.114f];

    /// <summary>The images at <paramref name="indices"/>.</summary>
    public BeitTrainingImages Subset(IReadOnlyList<int> indices)
    {
        int size = 3 * Height * Width;
        var pixels = new byte[indices.Count * size];
        var normalized = _normalized is null ? null : new float[indices.Count * size];
        var labels = new int[indices.Count];
        for (int k = 0; k < indices.Count; k++)
        {
            Pixels.AsSpan(indices[k] * size, size).CopyTo(pixels.AsSpan(k * size));
            _normalized?.AsSpan(indices[k] * size, size).CopyTo(normalized.AsSpan(k * size));
            labels[k] = Labels[indices[k]];
        }
        return new BeitTrainingImages(pixels, labels, Height, Width, ClassNames) { ImageMean = ImageMean, ImageStd = ImageStd, _normalized = normalized };
    }

    /// <summary>Normalised pixels <c>float32 [n, 3, H, W]</c> and class ids <c>int64 [n]</c> of the images at <paramref name="indices"/>.</summary>
    public (Tensor Pixels, Tensor Labels) Batch(ReadOnlySpan<int> indices, Device? device = null)
    {
        int plane = Height * Width, size = 3 * plane;
        var data = new float[indices.Length * size];
        var labels = new long[indices.Length];
        for (int k = 0; k < indices.Length; k++)
        {
            var dst = data.AsSpan(k * size, size);
            labels[k] = Labels[indices[k]];
            if (_normalized is not null)
            {
                _normalized.AsSpan(indices[k] * size, size).CopyTo(dst);
                continue;
            }
            var src = Pixels.AsSpan(indices[k] * size, size);
            for (int c = 0; c < 3; c++)
            {
                // (x/255 − mean)/std as one multiply-add per value.
                float scale = 1f / (255f * ImageStd[c]), shift = -ImageMean[c] / ImageStd[c];
                for (int p = c * plane; p < (c + 1) * plane; p++) dst[p] = src[p] * scale + shift;
            }
        }
        var x = tensor(data, [indices.Length, 3, Height, Width]);
        var y = tensor(labels);
        if (device is not null && device.type != TorchSharp.DeviceType.CPU)
        {
            using (x) using (y) return (x.to(device), y.to(device));
        }
        return (x, y);
    }

    /// <summary>A stratified split: <paramref name="fraction"/> of each class (at least one image of a class with two or more) goes to the second set.</summary>
    public (BeitTrainingImages Train, BeitTrainingImages Validation) Split(double fraction, int seed)
    {
        if (fraction <= 0 || fraction >= 1) throw new ArgumentOutOfRangeException(nameof(fraction), "must be in (0, 1).");
        var rng = new Random(seed);
        var train = new List<int>();
        var valid = new List<int>();
        foreach (var group in Enumerable.Range(0, Count).GroupBy(i => Labels[i]).OrderBy(g => g.Key))
        {
            var idx = group.ToArray();
            rng.Shuffle(idx);
            int n = idx.Length < 2 ? 0 : Math.Max(1, (int)Math.Round(idx.Length * fraction));
            valid.AddRange(idx[..n]);
            train.AddRange(idx[n..]);
        }
        train.Sort();
        valid.Sort();
        return (Subset(train), Subset(valid));
    }
}
