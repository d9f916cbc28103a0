namespace Microsoft.ML.Beit.Processing;

/// <summary>A height and width in pixels (Hugging Face's <c>{"height": h, "width": w}</c>).</summary>
/// <param name="Height">Rows.</param>
/// <param name="Width">Columns.</param>
public readonly record struct PixelSize(int Height, int Width)
{
    /// <inheritdoc />
    public override string ToString() => $"{Height}x{Width} (HxW)";
}

/// <summary>
/// The <c>size</c> of a Hugging Face image processor: either an exact <c>{"height","width"}</c>, or
/// <c>{"shortest_edge"}</c> (optionally with <c>"longest_edge"</c>), which keeps the aspect ratio as
/// <c>transformers.image_transforms.get_resize_output_image_size</c> does.
/// </summary>
public sealed record ResizeSize
{
    private ResizeSize(int? height, int? width, int? shortestEdge, int? longestEdge)
    {
        Height = height;
        Width = width;
        ShortestEdge = shortestEdge;
        LongestEdge = longestEdge;
    }

    /// <summary>The exact output height, when this is a height/width size.</summary>
    public int? Height { get; }

    /// <summary>The exact output width, when this is a height/width size.</summary>
    public int? Width { get; }

    /// <summary>The length the shorter side is resized to, when this is a shortest-edge size.</summary>
    public int? ShortestEdge { get; }

    /// <summary>An optional cap on the longer side of a shortest-edge size.</summary>
    public int? LongestEdge { get; }

    /// <summary>Resize to exactly <paramref name="height"/>×<paramref name="width"/>.</summary>
    public static ResizeSize Exact(int height, int width)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"Size must be positive, got {height}x{width}.");
        return new ResizeSize(height, width, null, null);
    }

    /// <summary>Resize so that the shorter side is <paramref name="shortestEdge"/>, keeping the aspect ratio (the longer side is truncated to an integer), optionally capping the longer side.</summary>
    public static ResizeSize Shortest(int shortestEdge, int? longestEdge = null)
    {
        if (shortestEdge <= 0) throw new ArgumentException($"shortest_edge must be positive, got {shortestEdge}.");
        if (longestEdge is { } l && l <= shortestEdge)
            throw new ArgumentException($"longest_edge ({l}) must be larger than shortest_edge ({shortestEdge}).");
        return new ResizeSize(null, null, shortestEdge, longestEdge);
    }

    /// <summary>The output size for an input of <paramref name="input"/>.</summary>
    public PixelSize GetOutputSize(PixelSize input)
    {
        int height = input.Height, width = input.Width;
        if (Height is { } h && Width is { } w) return new PixelSize(h, w);
        int size = ShortestEdge!.Value;
        int shortSide = Math.Min(width, height), longSide = Math.Max(width, height);
        // Python: new_long = int(size * long / short), a float division then truncation.
        int newShort = size, newLong = (int)((double)((long)size * longSide) / shortSide);
        if (LongestEdge is { } max && newLong > max)
        {
            newShort = (int)((double)((long)max * newShort) / newLong);
            newLong = max;
        }
        return width <= height ? new PixelSize(newLong, newShort) : new PixelSize(newShort, newLong);
    }

    /// <inheritdoc />
    public override string ToString() => Height is { } h
        ? $"{{height: {h}, width: {Width}}}"
        : LongestEdge is { } l ? $"{{shortest_edge: {ShortestEdge}, longest_edge: {l}}}" : $"{{shortest_edge: {ShortestEdge}}}";
}
