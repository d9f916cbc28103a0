namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// A semantic segmentation label map: one class id (0..255) per pixel, rows top to bottom, as
/// <c>np.array(Image.open(f))</c> gives a grey or palette PNG.
/// </summary>
public sealed class LabelMap
{
    /// <summary>Wraps <paramref name="labels"/> (not copied), which must hold exactly <c>height·width</c> bytes.</summary>
    /// <exception cref="ArgumentException">A dimension is not positive or the buffer has the wrong length.</exception>
    public LabelMap(PixelSize size, byte[] labels)
    {
        int width = size.Width, height = size.Height;
        ArgumentNullException.ThrowIfNull(labels);
        if (width <= 0 || height <= 0) throw new ArgumentException($"Label map dimensions must be positive, got {width}x{height}.");
        if (labels.LongLength != (long)width * height)
            throw new ArgumentException($"A {width}x{height} label map needs {(long)width * height} bytes, got {labels.LongLength}.", nameof(labels));
        Width = width;
        Height = height;
        Labels = labels;
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The height and width.</summary>
    public PixelSize Size => new(Height, Width);

    /// <summary>The labels, <c>[Height, Width]</c> row-major.</summary>
    public byte[] Labels { get; }

    /// <summary>The labels widened to int64, the dtype Hugging Face's processor returns as <c>labels</c>.</summary>
    public long[] ToInt64() => Array.ConvertAll(Labels, v => (long)v);
}
