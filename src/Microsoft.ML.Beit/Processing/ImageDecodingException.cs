namespace Microsoft.ML.Beit.Processing;

/// <summary>Why an image could not be decoded.</summary>
public enum ImageDecodingError
{
    /// <summary>The input has no bytes.</summary>
    Empty,
    /// <summary>The bytes are not an image in a supported format (PNG, JPEG, BMP, GIF, WebP).</summary>
    NotAnImage,
    /// <summary>The image ends before all of its pixels.</summary>
    Truncated,
    /// <summary>The image's structure or compressed data is invalid.</summary>
    Corrupt,
    /// <summary>The image has more pixels than <see cref="ImageDecoderOptions.MaxPixels"/> allows (a decompression bomb guard).</summary>
    TooLarge,
    /// <summary>A valid image that uses a feature this decoder does not support, or is not a label map.</summary>
    Unsupported,
    /// <summary>The path leads (after symbolic links) to a device, FIFO, socket or folder rather than a regular file.</summary>
    NotARegularFile,
}

/// <summary>An image that cannot be decoded; the message names its source (a file path or a caller-given name).</summary>
public sealed class ImageDecodingException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="sourceName">The file path or caller-given name of the image.</param>
    /// <param name="error">What went wrong.</param>
    /// <param name="detail">A sentence on the specific problem.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public ImageDecodingException(string sourceName, ImageDecodingError error, string detail, Exception? inner = null)
        : base($"Cannot decode image '{sourceName}': {Describe(error)}: {detail}", inner)
    {
        SourceName = sourceName;
        Error = error;
    }

    /// <summary>The file path or caller-given name of the image.</summary>
    public string SourceName { get; }

    /// <summary>What went wrong.</summary>
    public ImageDecodingError Error { get; }

    private static string Describe(ImageDecodingError error) => error switch
    {
        ImageDecodingError.Empty => "the input is empty",
        ImageDecodingError.NotAnImage => "not a PNG, JPEG, BMP, GIF or WebP image",
        ImageDecodingError.Truncated => "the image is truncated",
        ImageDecodingError.Corrupt => "the image is corrupt",
        ImageDecodingError.TooLarge => "the image is too large",
        ImageDecodingError.Unsupported => "unsupported image",
        ImageDecodingError.NotARegularFile => "not a regular file",
        _ => error.ToString(),
    };
}
