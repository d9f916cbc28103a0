using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Processor = Microsoft.ML.Beit.Processing.BeitImageProcessor;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// <c>mlContext.Transforms.BeitImageProcessor</c>: decoded images → <c>pixel_values</c> <c>[3, H, W]</c> (a float
/// vector), bit for bit as Hugging Face's <c>BeitImageProcessor</c> (<see cref="Processor"/>), configured by options or
/// by a checkpoint's <c>preprocessor_config.json</c>.
/// </summary>
public sealed class BeitImageProcessorEstimator : IEstimator<BeitImageProcessorTransformer>
{
    internal const string StageName = "BeitImageProcessor";
    private const string Expected = "a decoded-image column (the output of LoadBeitImages) or an MLImage column (the output of LoadImages)";

    private readonly TransformsCatalog _catalog;
    private readonly Options _options;

    /// <summary>Options of <see cref="BeitImageProcessorEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The pixel-values column to create (default <c>PixelValues</c>).</summary>
        public string OutputColumnName { get; set; } = "PixelValues";

        /// <summary>
        /// The image column (default <c>Image</c>): a decoded-image column from <c>LoadBeitImages</c> (Pillow-exact), or
        /// an <c>MLImage</c> column from ML.NET's <c>LoadImages</c> (decoded by SkiaSharp into premultiplied alpha: equal
        /// to <c>LoadBeitImages</c> for opaque images, not for translucent pixels).
        /// </summary>
        public string InputColumnName { get; set; } = "Image";

        /// <summary>The processor; by default the class defaults (v4.34: 256×256 bicubic, center crop 224). See <see cref="LoadProcessor"/>.</summary>
        public Processor Processor { get; set; } = new();
    }

    internal BeitImageProcessorEstimator(TransformsCatalog catalog, Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.OutputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        ArgumentNullException.ThrowIfNull(options.Processor);
        _catalog = catalog;
        _options = options;
    }

    /// <summary>The processor this stage applies.</summary>
    public Processor Processor => _options.Processor;

    /// <summary>
    /// The processor for a model: <paramref name="path"/> is a <c>preprocessor_config.json</c> file, a checkpoint
    /// folder or a Hugging Face model id. A folder without <c>preprocessor_config.json</c> (the tiny test checkpoints, models saved by
    /// <c>SavePretrained</c>) gets transformers v5's class defaults at the model's resolution: resize to
    /// <c>image_size</c>×<c>image_size</c> bicubic, no crop, rescale 1/255, mean = std = 0.5.
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither file exists.</exception>
    public static Processor LoadProcessor(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Hub.BeitHub.LocalPath(path, Hub.BeitHubFiles.Configuration | Hub.BeitHubFiles.Preprocessor);
        if (File.Exists(path)) return Processor.FromPretrained(path);
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, Processor.ConfigFileName))) return Processor.FromPretrained(path);
            if (File.Exists(Path.Combine(path, BeitConfig.FileName))) return ForConfig(BeitConfig.Load(path));
            throw new FileNotFoundException($"'{path}' has neither {Processor.ConfigFileName} nor {BeitConfig.FileName}.", Path.Combine(path, Processor.ConfigFileName));
        }
        throw new FileNotFoundException($"Preprocessor configuration '{path}' does not exist (expected a preprocessor_config.json or a checkpoint folder).", path);
    }

    /// <summary>transformers v5's class defaults at <paramref name="config"/>'s resolution (see <see cref="LoadProcessor"/>).</summary>
    public static Processor ForConfig(BeitConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new Processor { Size = ResizeSize.Exact(config.ImageSize, config.ImageSize), DoCenterCrop = false };
    }

    /// <inheritdoc />
    public BeitImageProcessorTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var column = BeitSchemaChecks.Require(input.Schema, _options.InputColumnName, StageName,
            t => BeitSchemaChecks.IsByteVector(t) || t is ImageDataViewType, Expected);
        var config = new BeitStageConfig
        {
            Stage = BeitStages.ProcessImages,
            Column = _options.InputColumnName,
            Output = _options.OutputColumnName,
            Processor = _options.Processor.ToJson(),
        };
        var builder = new BeitStageBuilder(_catalog, config);
        if (column.Type is ImageDataViewType)
            builder.In(BeitColumns.Input, _options.InputColumnName).MapImage(new MLImageMapping(), BeitColumns.Image);
        else
            builder.In(BeitColumns.Image, _options.InputColumnName);
        var chain = builder
            .Map(new ProcessImageMapping(), BeitColumns.Pixels)
            .Finish((_options.OutputColumnName, BeitColumns.Pixels))
            .Fit(input);
        return new BeitImageProcessorTransformer(chain, config);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        BeitSchemaChecks.Require(inputSchema, _options.InputColumnName, StageName,
            c => BeitSchemaChecks.IsByteVector(c) || (c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType is ImageDataViewType), Expected);
        return SchemaShapeShim.OutputShape(_catalog, inputSchema, [(_options.OutputColumnName, BeitColumns.Pixels)]);
    }
}

/// <summary>The fitted <see cref="BeitImageProcessorEstimator"/>.</summary>
public sealed class BeitImageProcessorTransformer : BeitTransformerBase
{
    internal BeitImageProcessorTransformer(TransformerChain<ITransformer> chain, BeitStageConfig config)
        : base(chain, config, null)
    {
    }

    /// <summary>The image column (decoded-image bytes or <c>MLImage</c>).</summary>
    public string InputColumnName => StageConfig.Column;

    /// <summary>The pixel-values column.</summary>
    public string OutputColumnName => StageConfig.Output;

    /// <summary>The processor (as stored in the model).</summary>
    public Processor Processor => StageConfig.GetProcessor();

    /// <summary>The typed view of the <c>BeitImageProcessor</c> stage inside a model returned by <c>mlContext.Model.Load</c> (or the stage itself inside a model built in this process).</summary>
    /// <exception cref="ArgumentException">The model holds no such stage.</exception>
    public static BeitImageProcessorTransformer FromLoaded(ITransformer model)
    {
        return BeitStageLocator.Find(model, BeitStages.ProcessImages, (chain, config) => new BeitImageProcessorTransformer(chain, config));
    }
}
