using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>The decoded image a load mapping writes (see <see cref="BeitImageColumn"/>).</summary>
internal sealed class DecodedImageOutput
{
    [ColumnName(BeitColumns.DecodedImage)]
    public byte[] Image { get; set; } = [];

    /// <summary>Writes header + pixels, reusing the previous row's buffer when the size repeats.</summary>
    public void Set(RgbImage image) => Image = ImageLoading.Write(Image, image);
}

/// <summary>The decoded image, or the missing-image marker and the reason, of a load mapping that keeps going.</summary>
internal sealed class DecodedImageOrErrorOutput
{
    [ColumnName(BeitColumns.DecodedImage)]
    public byte[] Image { get; set; } = [];

    [ColumnName(BeitColumns.Error)]
    public string Error { get; set; } = "";

    /// <summary>Writes the loaded image and an empty reason, or the missing-image marker and the failure's message.</summary>
    public void Set(Func<RgbImage> load)
    {
        try
        {
            Image = ImageLoading.Write(Image, load());
            Error = "";
        }
        catch (BeitInputException e)
        {
            Image = BeitImageColumn.MissingValue();
            Error = e.Message;
        }
    }
}

/// <summary>Decoding with every expected failure turned into a <see cref="BeitInputException"/> naming the column and source.</summary>
internal static class ImageLoading
{
    public static RgbImage FromFile(BeitStageConfig config, string path)
    {
        if (string.IsNullOrEmpty(path)) throw new BeitInputException(config.Column, null, null, "the image path is empty.");
        if (config.ImageFolder is { } folder) path = UnderFolder(config, folder, path);
        try
        {
            return ImageDecoder.Decode(path, config.DecoderOptions());
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BeitInputException(config.Column, null, path, "the image file does not exist.", e);
        }
        catch (ImageDecodingException e)
        {
            throw new BeitInputException(config.Column, null, path, Describe(e), e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BeitInputException(config.Column, null, path, $"the image file cannot be read: {e.Message}", e);
        }
    }

    /// <summary>
    /// <paramref name="path"/> resolved under the image folder; a rooted path or one that leads out of the folder is a
    /// bad row, refused before anything is opened.
    /// </summary>
    public static string UnderFolder(BeitStageConfig config, string folder, string path)
    {
        if (Path.IsPathRooted(path))
            throw new BeitInputException(config.Column, null, path, $"the path is absolute; with an image folder ('{folder}') paths must be relative to it.");
        string root, full;
        try
        {
            root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
            full = Path.GetFullPath(Path.Combine(root, path));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new BeitInputException(config.Column, null, path, $"the path is not valid: {e.Message}", e);
        }
        // TrimEndingDirectorySeparator keeps the separator of a file-system root ("/").
        string prefix = Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar;
        if (!full.StartsWith(prefix, StringComparison.Ordinal))
            throw new BeitInputException(config.Column, null, path, $"the path leads outside the image folder '{folder}'.");
        return full;
    }

    public static RgbImage FromBytes(BeitStageConfig config, byte[]? bytes)
    {
        try
        {
            return ImageDecoder.Decode(bytes ?? [], "<bytes>", config.DecoderOptions());
        }
        catch (ImageDecodingException e)
        {
            throw new BeitInputException(config.Column, null, null, Describe(e), e);
        }
    }

    /// <summary>Header + pixels into <paramref name="buffer"/> when its size fits (the destination lives as long as the cursor), else a new array.</summary>
    public static byte[] Write(byte[] buffer, RgbImage image)
    {
        int length = BeitImageColumn.HeaderLength + image.Pixels.Length;
        if (buffer.Length != length) buffer = new byte[length];
        BeitImageColumn.WriteHeader(buffer, image.Width, image.Height);
        image.Pixels.CopyTo(buffer, BeitImageColumn.HeaderLength);
        return buffer;
    }

    /// <summary>The decoder's message without its "Cannot decode image 'source'" prefix (the stage names the source itself).</summary>
    public static string Describe(ImageDecodingException e)
    {
        string prefix = $"Cannot decode image '{e.SourceName}': ";
        string message = e.Message.StartsWith(prefix, StringComparison.Ordinal) ? e.Message[prefix.Length..] : e.Message;
        return "cannot decode the image: " + message;
    }
}

/// <summary><c>LoadBeitImages</c> from a text column of image paths.</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class LoadImageFileMapping : CustomMappingFactory<LoadImageFileMapping.Input, DecodedImageOutput>
{
    public const string Contract = "Beit.LoadImageFiles.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Input)]
        public string Path { get; set; } = "";
    }

    public override Action<Input, DecodedImageOutput> GetMapping() => static (src, dst) =>
        dst.Set(ImageLoading.FromFile(BeitStageConfig.Get(src.Config), src.Path));
}

/// <summary><c>LoadBeitImages</c> from a column of encoded image bytes (a vector of bytes per row).</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class LoadImageBytesMapping : CustomMappingFactory<LoadImageBytesMapping.Input, DecodedImageOutput>
{
    public const string Contract = "Beit.LoadImageBytes.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Input)]
        public byte[] Bytes { get; set; } = [];
    }

    public override Action<Input, DecodedImageOutput> GetMapping() => static (src, dst) =>
        dst.Set(ImageLoading.FromBytes(BeitStageConfig.Get(src.Config), src.Bytes));
}

/// <summary><c>LoadBeitImages</c> with an error column, from image paths: a bad image becomes a missing row and its reason.</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class LoadImageFileOrErrorMapping : CustomMappingFactory<LoadImageFileMapping.Input, DecodedImageOrErrorOutput>
{
    public const string Contract = "Beit.LoadImageFilesOrError.v1";

    public override Action<LoadImageFileMapping.Input, DecodedImageOrErrorOutput> GetMapping() => static (src, dst) =>
        dst.Set(() => ImageLoading.FromFile(BeitStageConfig.Get(src.Config), src.Path));
}

/// <summary><c>LoadBeitImages</c> with an error column, from encoded bytes.</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class LoadImageBytesOrErrorMapping : CustomMappingFactory<LoadImageBytesMapping.Input, DecodedImageOrErrorOutput>
{
    public const string Contract = "Beit.LoadImageBytesOrError.v1";

    public override Action<LoadImageBytesMapping.Input, DecodedImageOrErrorOutput> GetMapping() => static (src, dst) =>
        dst.Set(() => ImageLoading.FromBytes(BeitStageConfig.Get(src.Config), src.Bytes));
}
