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
    public void Set(RgbImage image)
    {
        int length = BeitImageColumn.HeaderLength + image.Pixels.Length;
        if (Image.Length != length) Image = new byte[length];
        BeitImageColumn.WriteHeader(Image, image.Width, image.Height);
        image.Pixels.CopyTo(Image, BeitImageColumn.HeaderLength);
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
    {
        var config = BeitStageConfig.Get(src.Config);
        string path = src.Path;
        if (string.IsNullOrEmpty(path)) throw new BeitInputException(config.Column, null, null, "the image path is empty.");
        RgbImage image;
        try
        {
            image = ImageDecoder.Decode(path, config.DecoderOptions());
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BeitInputException(config.Column, null, path, "the image file does not exist.", e);
        }
        catch (ImageDecodingException e)
        {
            throw new BeitInputException(config.Column, null, path, LoadImageMappingErrors.Describe(e), e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BeitInputException(config.Column, null, path, $"the image file cannot be read: {e.Message}", e);
        }
        dst.Set(image);
    };
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
    {
        var config = BeitStageConfig.Get(src.Config);
        RgbImage image;
        try
        {
            image = ImageDecoder.Decode(src.Bytes ?? [], "<bytes>", config.DecoderOptions());
        }
        catch (ImageDecodingException e)
        {
            throw new BeitInputException(config.Column, null, null, LoadImageMappingErrors.Describe(e), e);
        }
        dst.Set(image);
    };
}

internal static class LoadImageMappingErrors
{
    /// <summary>The decoder's message without its "Cannot decode image 'source'" prefix (the stage names the source itself).</summary>
    public static string Describe(ImageDecodingException e)
    {
        string prefix = $"Cannot decode image '{e.SourceName}': ";
        string message = e.Message.StartsWith(prefix, StringComparison.Ordinal) ? e.Message[prefix.Length..] : e.Message;
        return "cannot decode the image: " + message;
    }
}
