namespace Microsoft.ML.Beit;

/// <summary>
/// What a saved image model takes as its one input column, as in Model Builder's <c>ModelInput</c>: an image file path,
/// or the encoded image bytes (<c>ModelInput.ImageSource</c>, a <c>byte[]</c>).
/// </summary>
public enum BeitModelInput
{
    /// <summary>A text column <see cref="BeitModelInputs.ImagePathColumn"/> holding an image file path.</summary>
    ImagePath,

    /// <summary>A <c>byte[]</c> (<c>Vector&lt;Byte&gt;</c>) column <see cref="BeitModelInputs.ImageBytesColumn"/> holding an encoded image (PNG, JPEG, ...).</summary>
    ImageBytes,
}

/// <summary>Column names and command-line spellings of <see cref="BeitModelInput"/>.</summary>
public static class BeitModelInputs
{
    /// <summary>The input column of an <see cref="BeitModelInput.ImagePath"/> model.</summary>
    public const string ImagePathColumn = "ImagePath";

    /// <summary>The input column of an <see cref="BeitModelInput.ImageBytes"/> model (Model Builder's name).</summary>
    public const string ImageBytesColumn = "ImageSource";

    /// <summary>The input column name of <paramref name="input"/>.</summary>
    public static string ColumnName(BeitModelInput input) => input switch
    {
        BeitModelInput.ImagePath => ImagePathColumn,
        BeitModelInput.ImageBytes => ImageBytesColumn,
        _ => throw new ArgumentOutOfRangeException(nameof(input), input, "unknown model input"),
    };

    /// <summary>Parses the command-line spelling: <c>path</c> or <c>bytes</c>.</summary>
    /// <exception cref="ArgumentException">Anything else.</exception>
    public static BeitModelInput Parse(string value) => value switch
    {
        "path" => BeitModelInput.ImagePath,
        "bytes" => BeitModelInput.ImageBytes,
        _ => throw new ArgumentException($"'{value}' is not a model input; use path or bytes.", nameof(value)),
    };

    /// <summary>The command-line spelling of <paramref name="input"/>: <c>path</c> or <c>bytes</c>.</summary>
    public static string ToCliValue(BeitModelInput input) => input == BeitModelInput.ImageBytes ? "bytes" : "path";

    /// <summary>An empty data view with just the input column of <paramref name="input"/>, to fit and save a pipeline with.</summary>
    public static IDataView EmptyInput(MLContext mlContext, BeitModelInput input)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return input == BeitModelInput.ImageBytes
            ? mlContext.Data.LoadFromEnumerable(Array.Empty<BytesRow>())
            : mlContext.Data.LoadFromEnumerable(Array.Empty<PathRow>());
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class BytesRow
    {
        public byte[] ImageSource { get; set; } = [];
    }
}
