namespace Microsoft.ML.Beit.Processing;

/// <summary>One class's share of a segmentation label map.</summary>
/// <param name="ClassId">The class index (the model's <c>id2label</c> key).</param>
/// <param name="Label">The class name.</param>
/// <param name="Pixels">How many pixels carry the class.</param>
/// <param name="Fraction">Pixels divided by the map's pixel count, in (0, 1].</param>
public readonly record struct BeitClassFraction(int ClassId, string Label, long Pixels, double Fraction);

/// <summary>
/// Pictures and numbers from a segmenter's label map (the <c>PredictedLabel</c> column of <c>BeitSegmenter</c>,
/// <c>height·width</c> class ids row-major, with its <c>PredictedLabelSize</c>): the map as a PNG whose pixel values
/// are the class ids, the image with the classes blended over it, and per-class pixel fractions.
/// </summary>
/// <remarks>
/// Class colours come from the PASCAL VOC development kit's colour map (<c>VOClabelcolormap.m</c>: the bits of the
/// class id interleaved into R, G and B), a fixed, deterministic palette that tells neighbouring ids apart and
/// extends to any id; class 0 is black, as in VOC.
/// </remarks>
public static class BeitSegmentationRendering
{
    /// <summary>The default opacity of the class colours over the image in <see cref="OverlayPng"/>.</summary>
    public const float DefaultOverlayAlpha = 0.5f;

    /// <summary>The largest class count a label-map PNG can hold (16-bit grey).</summary>
    public const int MaxClasses = 65536;

    /// <summary>The colour of class <paramref name="classId"/> (VOC colour map).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is negative.</exception>
    public static (byte R, byte G, byte B) ClassColor(int classId)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(classId);
        int r = 0, g = 0, b = 0, c = classId;
        for (int shift = 7; shift >= 0 && c != 0; shift--, c >>= 3)
        {
            r |= (c & 1) << shift;
            g |= ((c >> 1) & 1) << shift;
            b |= ((c >> 2) & 1) << shift;
        }
        return ((byte)r, (byte)g, (byte)b);
    }

    /// <summary>
    /// The label map as a PNG whose pixel values are the class ids: an 8-bit palette PNG coloured with
    /// <see cref="ClassColor"/> when <paramref name="classCount"/> ≤ 256 (<c>np.array(Image.open(f))</c> gives the ids
    /// back, and viewers show colours), otherwise a 16-bit grey PNG.
    /// </summary>
    /// <param name="labels">The class ids, <c>size.Height·size.Width</c>, row-major.</param>
    /// <param name="size">The map's size.</param>
    /// <param name="classCount">How many classes the model has (the length of its <c>id2label</c>).</param>
    /// <exception cref="ArgumentException">The size does not match the labels, or a label is outside <c>[0, classCount)</c>.</exception>
    public static byte[] LabelMapPng(ReadOnlySpan<int> labels, PixelSize size, int classCount)
    {
        if (classCount < 1 || classCount > MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(classCount), classCount, $"A label-map PNG holds 1 to {MaxClasses} classes.");
        CheckLabels(labels, size, classCount);
        if (classCount <= 256)
        {
            var indices = new byte[labels.Length];
            for (int i = 0; i < labels.Length; i++) indices[i] = (byte)labels[i];
            var palette = new byte[3 * classCount];
            for (int c = 0; c < classCount; c++) (palette[3 * c], palette[3 * c + 1], palette[3 * c + 2]) = ClassColor(c);
            return PngEncoder.EncodePalette(indices, size.Width, size.Height, palette);
        }
        var values = new ushort[labels.Length];
        for (int i = 0; i < labels.Length; i++) values[i] = (ushort)labels[i];
        return PngEncoder.EncodeGrey16(values, size.Width, size.Height);
    }

    /// <summary>
    /// The image with each pixel's class colour blended over it (<c>round((1 − alpha)·image + alpha·colour)</c>), as
    /// an RGB PNG of the map's size; with no image, the class colours alone.
    /// </summary>
    /// <param name="labels">The class ids, <c>size.Height·size.Width</c>, row-major.</param>
    /// <param name="size">The map's size; <paramref name="image"/> must have the same (the segmenter's maps have the original image's size).</param>
    /// <param name="image">The image that was segmented, or null.</param>
    /// <param name="alpha">The colours' opacity, 0 (image only) to 1 (colours only).</param>
    /// <exception cref="ArgumentException">The sizes disagree, a label is negative, or alpha is outside [0, 1].</exception>
    public static byte[] OverlayPng(ReadOnlySpan<int> labels, PixelSize size, RgbImage? image = null, float alpha = DefaultOverlayAlpha)
    {
        var rgb = Overlay(labels, size, image, alpha);
        return PngEncoder.EncodeRgb(rgb, size.Width, size.Height);
    }

    /// <summary>The blended pixels of <see cref="OverlayPng"/>, <c>[height, width, 3]</c> row-major.</summary>
    internal static byte[] Overlay(ReadOnlySpan<int> labels, PixelSize size, RgbImage? image, float alpha)
    {
        if (!(alpha >= 0f && alpha <= 1f)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "The overlay opacity must be in [0, 1].");
        CheckLabels(labels, size, int.MaxValue);
        if (image != null && (image.Height != size.Height || image.Width != size.Width))
            throw new ArgumentException($"The image is {image.Height}x{image.Width} (height x width) but the label map is {size.Height}x{size.Width}.", nameof(image));
        var rgb = new byte[checked(labels.Length * 3)];
        if (image == null) alpha = 1f;
        var colors = new Dictionary<int, (byte R, byte G, byte B)>();
        for (int i = 0; i < labels.Length; i++)
        {
            int id = labels[i];
            if (!colors.TryGetValue(id, out var color)) colors[id] = color = ClassColor(id);
            int o = 3 * i;
            if (image == null)
            {
                (rgb[o], rgb[o + 1], rgb[o + 2]) = color;
                continue;
            }
            var px = image.Pixels;
            rgb[o] = Blend(px[o], color.R, alpha);
            rgb[o + 1] = Blend(px[o + 1], color.G, alpha);
            rgb[o + 2] = Blend(px[o + 2], color.B, alpha);
        }
        return rgb;
    }

    private static byte Blend(byte under, byte over, float alpha) => (byte)MathF.Round((1f - alpha) * under + alpha * over, MidpointRounding.AwayFromZero);

    /// <summary>
    /// The classes present in the map with their pixel counts and fractions, the largest first (ties by class id).
    /// </summary>
    /// <param name="labels">The class ids of every pixel.</param>
    /// <param name="id2label">The class names by id (the model's <c>LabelNames</c>).</param>
    /// <exception cref="ArgumentException">The map is empty or a label is outside <c>[0, id2label.Count)</c>.</exception>
    public static IReadOnlyList<BeitClassFraction> ClassFractions(ReadOnlySpan<int> labels, IReadOnlyList<string> id2label)
    {
        ArgumentNullException.ThrowIfNull(id2label);
        if (labels.IsEmpty) throw new ArgumentException("The label map is empty.", nameof(labels));
        var counts = new long[id2label.Count];
        foreach (int id in labels)
        {
            if ((uint)id >= (uint)counts.Length)
                throw new ArgumentException($"Class id {id} is outside the model's {counts.Length} classes.", nameof(labels));
            counts[id]++;
        }
        var result = new List<BeitClassFraction>();
        for (int c = 0; c < counts.Length; c++)
            if (counts[c] > 0) result.Add(new BeitClassFraction(c, id2label[c], counts[c], (double)counts[c] / labels.Length));
        result.Sort((a, b) => a.Pixels != b.Pixels ? b.Pixels.CompareTo(a.Pixels) : a.ClassId.CompareTo(b.ClassId));
        return result;
    }

    private static void CheckLabels(ReadOnlySpan<int> labels, PixelSize size, int classCount)
    {
        if (size.Height <= 0 || size.Width <= 0) throw new ArgumentException($"The label map size must be positive, got {size.Height}x{size.Width} (height x width).", nameof(size));
        if (labels.Length != (long)size.Height * size.Width)
            throw new ArgumentException($"A {size.Height}x{size.Width} (height x width) label map needs {(long)size.Height * size.Width} labels, got {labels.Length}.", nameof(labels));
        foreach (int id in labels)
            if ((uint)id >= (uint)classCount)
                throw new ArgumentException($"Class id {id} is outside [0, {classCount}).", nameof(labels));
    }
}
