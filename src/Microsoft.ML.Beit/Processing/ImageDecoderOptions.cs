namespace Microsoft.ML.Beit.Processing;

/// <summary>Options of <see cref="ImageDecoder"/>.</summary>
public sealed record ImageDecoderOptions
{
    /// <summary>Pillow's <c>Image.MAX_IMAGE_PIXELS</c> (89,478,485): about a quarter gigabyte of RGB.</summary>
    public const long DefaultMaxPixels = 89_478_485;

    /// <summary>
    /// 256 MiB: the raw RGB size of an image of <see cref="DefaultMaxPixels"/> pixels. An encoded image within the pixel
    /// limit is essentially never larger than its raw pixels, so a bigger file is refused before it is read.
    /// </summary>
    public const long DefaultMaxFileBytes = 256L << 20;

    /// <summary>The defaults: no EXIF orientation, at most <see cref="DefaultMaxPixels"/> pixels and <see cref="DefaultMaxFileBytes"/> bytes.</summary>
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

    /// <summary>
    /// The largest image file (or stream) read, in bytes; larger ones are refused with
    /// <see cref="ImageDecodingError.TooLarge"/> without reading them. Image files must also be regular files (after
    /// symbolic links): a device such as <c>/dev/zero</c> or a FIFO is refused with
    /// <see cref="ImageDecodingError.NotARegularFile"/> before it is opened.
    /// </summary>
    public long MaxFileBytes { get; init; } = DefaultMaxFileBytes;
}
