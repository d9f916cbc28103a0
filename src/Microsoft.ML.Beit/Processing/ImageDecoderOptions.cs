namespace Microsoft.ML.Beit.Processing;

/// <summary>Options of <see cref="ImageDecoder"/>.</summary>
public sealed record ImageDecoderOptions
{
    /// <summary>Pillow's <c>Image.MAX_IMAGE_PIXELS</c> (89,478,485): about a quarter gigabyte of RGB.</summary>
    public const long DefaultMaxPixels = 89_478_485;

    /// <summary>The defaults: no EXIF orientation, at most <see cref="DefaultMaxPixels"/> pixels.</summary>
    public static ImageDecoderOptions Default { get; } = new();

    /// <summary>
    /// Rotate or flip the image as its EXIF Orientation tag says (Pillow's <c>ImageOps.exif_transpose</c>). Off by
    /// default, as in Pillow and Hugging Face, which feed the stored pixels to the model.
    /// </summary>
    public bool ApplyExifOrientation { get; init; }

    /// <summary>
    /// The largest width·height accepted; larger images are refused with <see cref="ImageDecodingError.TooLarge"/>
    /// before any pixel memory is allocated (decompression bombs). Pillow warns above its default and refuses above
    /// twice it; this decoder refuses above it.
    /// </summary>
    public long MaxPixels { get; init; } = DefaultMaxPixels;
}
