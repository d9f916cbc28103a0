using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.LoadBeitImages</c>: image paths (a text column) or encoded image bytes (a vector of bytes)
/// → decoded RGB pixels, exactly as Pillow's <c>Image.open(f).convert("RGB")</c> gives them (<see cref="ImageDecoder"/>).
/// The output is a decoded-image column (<see cref="BeitImageColumn"/>) for <c>BeitImageProcessor</c>.
/// </summary>
public sealed class LoadBeitImagesEstimator : IEstimator<LoadBeitImagesTransformer>
{
    internal const string StageName = "LoadBeitImages";

    private readonly TransformsCatalog _catalog;
    private readonly Options _options;

    /// <summary>Options of <see cref="LoadBeitImagesEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The decoded-image column to create (default <c>Image</c>).</summary>
        public string OutputColumnName { get; set; } = "Image";

        /// <summary>The input: a text column of image paths, or a column of encoded image bytes (default <c>ImagePath</c>).</summary>
        public string InputColumnName { get; set; } = "ImagePath";

        /// <summary>
        /// The folder image paths are relative to, as in ML.NET's <c>LoadImages(outputColumnName, imageFolder, inputColumnName)</c>
        /// (default null: paths are used as given). When set, every path must stay inside it: an absolute path, or one
        /// that leads out of it with <c>..</c>, is a bad row (a <see cref="BeitInputException"/>, or a reason in
        /// <see cref="ErrorColumnName"/>) and is never read. The check is on the path's text; links inside the folder
        /// are followed. Stored in the saved model as given (a relative folder resolves against the current directory
        /// when the model scores). Only for a column of paths.
        /// </summary>
        public string? ImageFolder { get; set; }

        /// <summary>EXIF orientation, the pixel limit and the file-size limit (defaults: as Pillow and Hugging Face, no EXIF rotation).</summary>
        public ImageDecoderOptions DecoderOptions { get; set; } = ImageDecoderOptions.Default;

        /// <summary>
        /// Null (the default): a row whose image is missing, unreadable or undecodable throws a
        /// <see cref="BeitInputException"/> from the cursor, and no row after it comes back. Set it to keep going
        /// instead: this text column then holds, per row, the reason (the message the exception would have had) or ""
        /// for a good image, and a bad row's image is the missing-image value (see <see cref="BeitImageColumn"/>),
        /// which the later BEiT stages score as NaN, no label, or an empty map. Keep the good rows with e.g.
        /// <c>mlContext.Data.FilterByCustomPredicate</c> or by reading this column.
        /// </summary>
        public string? ErrorColumnName { get; set; }
    }

    internal LoadBeitImagesEstimator(TransformsCatalog catalog, Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.OutputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        ArgumentNullException.ThrowIfNull(options.DecoderOptions);
        if (options.ImageFolder is { Length: 0 })
            throw new ArgumentException("ImageFolder must be null or a folder path.", nameof(options));
        if (options.ErrorColumnName is { } error && (error.Length == 0 || error == options.OutputColumnName))
            throw new ArgumentException($"ErrorColumnName must be null or a column name other than the output '{options.OutputColumnName}'.", nameof(options));
        _catalog = catalog;
        _options = options;
    }

    private const string Expected = "a text column of image paths or a vector of encoded image bytes";

    /// <summary>Builds the stage for the input's column type (paths or bytes).</summary>
    public LoadBeitImagesTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = BeitSchemaChecks.Require(input.Schema, _options.InputColumnName, StageName,
            t => t is TextDataViewType || BeitSchemaChecks.IsByteVector(t), Expected);
        var config = new BeitStageConfig
        {
            Stage = BeitStages.LoadImages,
            Column = _options.InputColumnName,
            Output = _options.OutputColumnName,
            ApplyExifOrientation = _options.DecoderOptions.ApplyExifOrientation,
            MaxPixels = _options.DecoderOptions.MaxPixels,
            MaxFileBytes = _options.DecoderOptions.MaxFileBytes,
            ErrorColumn = _options.ErrorColumnName,
            ImageFolder = _options.ImageFolder,
        };
        if (_options.ImageFolder != null && column.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(input),
                $"{StageName}: ImageFolder applies to a column of image paths; '{_options.InputColumnName}' holds encoded image bytes.");
        var builder = new BeitStageBuilder(_catalog, config).In(BeitColumns.Input, _options.InputColumnName);
        bool paths = column.Type is TextDataViewType;
        if (_options.ErrorColumnName == null)
        {
            if (paths) builder.Map(new LoadImageFileMapping(), BeitColumns.DecodedImage);
            else builder.Map(new LoadImageBytesMapping(), BeitColumns.DecodedImage);
        }
        else if (paths) builder.Map(new LoadImageFileOrErrorMapping(), BeitColumns.DecodedImage, BeitColumns.Error);
        else builder.Map(new LoadImageBytesOrErrorMapping(), BeitColumns.DecodedImage, BeitColumns.Error);
        var chain = builder.Finish(Outputs()).Fit(input);
        return new LoadBeitImagesTransformer(chain, config);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        BeitSchemaChecks.Require(inputSchema, _options.InputColumnName, StageName,
            c => (c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType is TextDataViewType) || BeitSchemaChecks.IsByteVector(c), Expected);
        return SchemaShapeShim.OutputShape(_catalog, inputSchema, Outputs());
    }

    private (string, string)[] Outputs() => _options.ErrorColumnName is { } error
        ? [(_options.OutputColumnName, BeitColumns.DecodedImage), (error, BeitColumns.Error)]
        : [(_options.OutputColumnName, BeitColumns.DecodedImage)];
}

/// <summary>The fitted <see cref="LoadBeitImagesEstimator"/>.</summary>
public sealed class LoadBeitImagesTransformer : BeitTransformerBase
{
    internal LoadBeitImagesTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config)
        : base(chain, config, null)
    {
    }

    /// <summary>The input column (paths or bytes).</summary>
    public string InputColumnName => StageConfig.Column;

    /// <summary>The decoded-image column.</summary>
    public string OutputColumnName => StageConfig.Output;

    /// <summary>The error column (see <see cref="LoadBeitImagesEstimator.Options.ErrorColumnName"/>), or null when a bad image throws.</summary>
    public string? ErrorColumnName => StageConfig.ErrorColumn;

    /// <summary>The folder image paths are relative to, or null (see <see cref="LoadBeitImagesEstimator.Options.ImageFolder"/>).</summary>
    public string? ImageFolder => StageConfig.ImageFolder;

    /// <summary>The decoder settings.</summary>
    public ImageDecoderOptions DecoderOptions => StageConfig.DecoderOptions();

    /// <summary>The typed view of the <c>LoadBeitImages</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static LoadBeitImagesTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.LoadImages, (chain, config) => new LoadBeitImagesTransformer(chain, config));
    }
}
