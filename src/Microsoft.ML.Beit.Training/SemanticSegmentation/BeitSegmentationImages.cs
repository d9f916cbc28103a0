using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.SemanticSegmentation;

/// <summary>
/// Images with per-pixel label maps, held in memory at one size: 8-bit CHW RGB pixels and one byte per label
/// (255 = ignore), with the mean/std the model normalises the pixels with.
/// </summary>
public sealed class BeitSegmentationImages
{
    /// <summary>Creates a set from <c>count·3·height·width</c> CHW pixel bytes and <c>count·height·width</c> label bytes.</summary>
    public BeitSegmentationImages(byte[] pixels, byte[] labelMaps, int count, int height, int width, IReadOnlyList<string> classNames, int ignoreIndex = 255)
    {
        if (pixels.LongLength != (long)count * 3 * height * width) throw new ArgumentException($"Expected {count}·3·{height}·{width} pixel bytes, got {pixels.LongLength}.");
        if (labelMaps.LongLength != (long)count * height * width) throw new ArgumentException($"Expected {count}·{height}·{width} label bytes, got {labelMaps.LongLength}.");
        foreach (var l in labelMaps)
            if (l != ignoreIndex && l >= classNames.Count) throw new ArgumentException($"Label {l} is neither a class (0..{classNames.Count - 1}) nor the ignore index {ignoreIndex}.");
        Pixels = pixels;
        LabelMaps = labelMaps;
        Count = count;
        Height = height;
        Width = width;
        ClassNames = classNames;
        IgnoreIndex = ignoreIndex;
    }

    private float[]? _normalized;

    /// <summary>A set of already-normalised float pixels (<c>count·3·height·width</c>, CHW), e.g. read from an ML.NET pixel-values column.</summary>
    internal static BeitSegmentationImages FromNormalizedPixels(float[] pixels, byte[] labelMaps, int count, int height, int width, IReadOnlyList<string> classNames, int ignoreIndex = 255)
    {
        if (pixels.LongLength != (long)count * 3 * height * width) throw new ArgumentException($"Expected {count}·3·{height}·{width} values, got {pixels.LongLength}.");
        return new BeitSegmentationImages(new byte[pixels.Length], labelMaps, count, height, width, classNames, ignoreIndex) { _normalized = pixels };
    }

    /// <summary>CHW pixel bytes of every image.</summary>
    public byte[] Pixels { get; }
    /// <summary>Label bytes of every map.</summary>
    public byte[] LabelMaps { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Height of images and maps.</summary>
    public int Height { get; }
    /// <summary>Width of images and maps.</summary>
    public int Width { get; }
    /// <summary>Class names by id.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Label value that no loss or metric counts.</summary>
    public int IgnoreIndex { get; }
    /// <summary>Per-channel normalisation mean.</summary>
    public float[] ImageMean { get; init; } = [0.5f, 0.5f, 0.5f];
    /// <summary>Per-channel normalisation standard deviation.</summary>
    public float[] ImageStd { get; init; } = [0.5f, 0.5f, 0.5f];

    /// <summary>The images at <paramref name="indices"/>.</summary>
    public BeitSegmentationImages Subset(IReadOnlyList<int> indices)
    {
        int plane = Height * Width;
        var pixels = new byte[indices.Count * 3 * plane];
        var maps = new byte[indices.Count * plane];
        var normalized = _normalized is null ? null : new float[indices.Count * 3 * plane];
        for (int k = 0; k < indices.Count; k++)
        {
            Pixels.AsSpan(indices[k] * 3 * plane, 3 * plane).CopyTo(pixels.AsSpan(k * 3 * plane));
            _normalized?.AsSpan(indices[k] * 3 * plane, 3 * plane).CopyTo(normalized.AsSpan(k * 3 * plane));
            LabelMaps.AsSpan(indices[k] * plane, plane).CopyTo(maps.AsSpan(k * plane));
        }
        return new BeitSegmentationImages(pixels, maps, indices.Count, Height, Width, ClassNames, IgnoreIndex) { ImageMean = ImageMean, ImageStd = ImageStd, _normalized = normalized };
    }

    /// <summary>A random split with <paramref name="fraction"/> of the images in the second set.</summary>
    public (BeitSegmentationImages Train, BeitSegmentationImages Validation) Split(double fraction, int seed)
    {
        if (fraction <= 0 || fraction >= 1) throw new ArgumentOutOfRangeException(nameof(fraction), "must be in (0, 1).");
        var idx = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(idx);
        int n = Math.Max(1, (int)Math.Round(Count * fraction));
        return (Subset(idx[n..].Order().ToArray()), Subset(idx[..n].Order().ToArray()));
    }

    /// <summary>Normalised pixels <c>float32 [n,3,H,W]</c> and labels <c>int64 [n,H,W]</c> of the images at <paramref name="indices"/>.</summary>
    public (Tensor Pixels, Tensor Labels) Batch(ReadOnlySpan<int> indices, Device? device = null)
    {
        int plane = Height * Width;
        var data = new float[indices.Length * 3 * plane];
        var labels = new long[indices.Length * plane];
        for (int k = 0; k < indices.Length; k++)
        {
            var map = LabelMaps.AsSpan(indices[k] * plane, plane);
            for (int p = 0; p < plane; p++) labels[k * plane + p] = map[p];
            if (_normalized is not null)
            {
                _normalized.AsSpan(indices[k] * 3 * plane, 3 * plane).CopyTo(data.AsSpan(k * 3 * plane));
                continue;
            }
            var src = Pixels.AsSpan(indices[k] * 3 * plane, 3 * plane);
            for (int c = 0; c < 3; c++)
            {
                float scale = 1f / (255f * ImageStd[c]), shift = -ImageMean[c] / ImageStd[c];
                int o = (k * 3 + c) * plane;
                for (int p = 0; p < plane; p++) data[o + p] = src[c * plane + p] * scale + shift;
            }
        }
        var x = tensor(data, [indices.Length, 3, Height, Width]);
        var y = tensor(labels, [indices.Length, Height, Width]);
        if (device is not null && device.type != TorchSharp.DeviceType.CPU)
        {
            using (x) using (y) return (x.to(device), y.to(device));
        }
        return (x, y);
    }
}
