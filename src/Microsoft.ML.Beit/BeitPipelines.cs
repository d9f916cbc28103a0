using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit;

/// <summary>
/// The standard scoring pipeline of a task, built from a model source and a processor, and saved as a
/// <c>model.zip</c> that <c>mlContext.Model.Load</c> (or <see cref="BeitModelZip.Load"/>) reads with nothing registered:
/// <c>ImagePath</c> (or image bytes) → <c>LoadBeitImages</c> → <c>Image</c> → <c>BeitImageProcessor</c> →
/// <c>PixelValues</c> → <c>BeitClassifier</c> | <c>BeitFeaturizer</c> | <c>BeitSegmenter</c>. <c>beit package</c>,
/// <c>BeitModelBuilder</c> and the segmentation trainer all save through it.
/// </summary>
public static class BeitPipelines
{
    /// <summary>The default input column: the path of an image file.</summary>
    public const string ImagePathColumn = "ImagePath";

    /// <summary>The decoded-image column between the loader and the processor (the segmenter reads each image's size from it).</summary>
    public const string ImageColumn = "Image";

    /// <summary>The pixel-values column between the processor and the model stage.</summary>
    public const string PixelValuesColumn = "PixelValues";

    /// <summary>What the pipeline's input column holds.</summary>
    public enum ImageInput
    {
        /// <summary>A text column of image file paths.</summary>
        Paths,

        /// <summary>A variable-length vector of encoded image bytes (PNG, JPEG, ...).</summary>
        Bytes,
    }

    /// <summary>
    /// Options of the pipeline: the ONNX Runtime and export settings of the model stage (inherited: precision through
    /// <see cref="BeitOnnxStageOptions.ExportOptions"/>, threads and GPU, which ML.NET does not store in a saved model),
    /// the processor and the input.
    /// </summary>
    public sealed class Options : BeitOnnxStageOptions
    {
        /// <summary>
        /// The preprocessing; null takes the model's: a checkpoint folder's <c>preprocessor_config.json</c> (or, without
        /// one, the class defaults at its <c>image_size</c>, see <see cref="BeitImageProcessorEstimator.LoadProcessor"/>),
        /// or for an in-memory model the class defaults at its configuration's <c>image_size</c>
        /// (<see cref="BeitImageProcessorEstimator.ForConfig"/>). An ONNX source needs it set.
        /// </summary>
        public BeitImageProcessor? Processor { get; set; }

        /// <summary>The input column (default <see cref="ImagePathColumn"/>).</summary>
        public string InputColumnName { get; set; } = ImagePathColumn;

        /// <summary>What the input column holds (default <see cref="ImageInput.Paths"/>).</summary>
        public ImageInput Input { get; set; } = ImageInput.Paths;

        /// <summary>EXIF orientation, the pixel limit and the file-size limit of the image loader.</summary>
        public ImageDecoderOptions DecoderOptions { get; set; } = ImageDecoderOptions.Default;
    }

    /// <summary>
    /// The unfitted pipeline for <paramref name="task"/>: <see cref="BeitOnnxTask.ImageClassification"/> (<c>Score</c>,
    /// <c>PredictedLabel</c>), <see cref="BeitOnnxTask.Features"/> (<c>Features</c>) or
    /// <see cref="BeitOnnxTask.SemanticSegmentation"/> (<c>PredictedLabel</c>, <c>PredictedLabelSize</c>: a class map at
    /// each image's own size). Masked image modeling has no scoring stage.
    /// </summary>
    /// <param name="mlContext">The context whose catalog builds the stages.</param>
    /// <param name="model">The network: a checkpoint folder, an ONNX model or tensors in memory.</param>
    /// <param name="task">The model stage.</param>
    /// <param name="options">Processor, input and ONNX Runtime settings; null for the defaults.</param>
    /// <exception cref="NotSupportedException"><paramref name="task"/> has no scoring stage.</exception>
    /// <exception cref="ArgumentException">The source is an ONNX model and <see cref="Options.Processor"/> is not set.</exception>
    public static EstimatorChain<ITransformer> CreateEstimator(MLContext mlContext, BeitModelSource model, BeitOnnxTask task, Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        options ??= new Options();
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        var t = mlContext.Transforms;
        var chain = new EstimatorChain<ITransformer>()
            .Append(t.LoadBeitImages(new LoadBeitImagesEstimator.Options
            {
                InputColumnName = options.InputColumnName,
                OutputColumnName = ImageColumn,
                DecoderOptions = options.DecoderOptions,
            }))
            .Append(t.BeitImageProcessor(new BeitImageProcessorEstimator.Options
            {
                InputColumnName = ImageColumn,
                OutputColumnName = PixelValuesColumn,
                Processor = ProcessorFor(model, options),
            }));
        return task switch
        {
            BeitOnnxTask.ImageClassification => chain.Append<ITransformer>(t.BeitClassifier(Stage(new BeitClassifierEstimator.Options { Model = model }, options))),
            BeitOnnxTask.Features => chain.Append<ITransformer>(t.BeitFeaturizer(Stage(new BeitFeaturizerEstimator.Options { Model = model }, options))),
            BeitOnnxTask.SemanticSegmentation => chain.Append<ITransformer>(t.BeitSegmenter(Stage(new BeitSegmenterEstimator.Options { Model = model, ImageColumnName = ImageColumn }, options))),
            _ => throw new NotSupportedException($"BeitPipelines: {task} has no scoring pipeline (use ImageClassification, Features or SemanticSegmentation)."),
        };
    }

    /// <summary>An empty view with only the pipeline's input column: what the pipeline is fitted on and saved with.</summary>
    /// <param name="mlContext">The context.</param>
    /// <param name="options">The input column and kind; null for a text column <see cref="ImagePathColumn"/>.</param>
    public static IDataView EmptyInput(MLContext mlContext, Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        options ??= new Options();
        ArgumentException.ThrowIfNullOrEmpty(options.InputColumnName);
        if (options.Input == ImageInput.Bytes)
        {
            var schema = SchemaDefinition.Create(typeof(BytesRow));
            schema[0].ColumnName = options.InputColumnName;
            return mlContext.Data.LoadFromEnumerable(Array.Empty<BytesRow>(), schema);
        }
        var paths = SchemaDefinition.Create(typeof(PathRow));
        paths[0].ColumnName = options.InputColumnName;
        return mlContext.Data.LoadFromEnumerable(Array.Empty<PathRow>(), paths);
    }

    /// <summary>
    /// Builds the fitted pipeline (exporting a checkpoint to ONNX in memory). Dispose it to release ONNX Runtime and
    /// its temporary ONNX file.
    /// </summary>
    /// <param name="mlContext">The context whose catalog builds the stages.</param>
    /// <param name="model">The network: a checkpoint folder, an ONNX model or tensors in memory.</param>
    /// <param name="task">The model stage.</param>
    /// <param name="options">Processor, input and ONNX Runtime settings; null for the defaults.</param>
    public static TransformerChain<ITransformer> Fit(MLContext mlContext, BeitModelSource model, BeitOnnxTask task, Options? options = null) =>
        CreateEstimator(mlContext, model, task, options).Fit(EmptyInput(mlContext, options));

    /// <summary>
    /// Saves <paramref name="pipeline"/> to <paramref name="modelPath"/> atomically: the path holds the previous file or
    /// the whole new one, never part of one, and nothing is left behind when saving fails.
    /// </summary>
    /// <param name="mlContext">The context to save with.</param>
    /// <param name="pipeline">The fitted pipeline (e.g. from <see cref="Fit"/>).</param>
    /// <param name="inputSchema">The schema it takes (e.g. <see cref="EmptyInput"/>'s).</param>
    /// <param name="modelPath">The <c>model.zip</c> to write.</param>
    public static void Save(MLContext mlContext, ITransformer pipeline, DataViewSchema inputSchema, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        AtomicFile.Write(modelPath, tmp => mlContext.Model.Save(pipeline, inputSchema, tmp));
    }

    /// <summary>
    /// Builds the pipeline of <paramref name="task"/> for <paramref name="model"/> and saves it to
    /// <paramref name="modelPath"/> atomically; an unwritable path fails before the (slow) export.
    /// </summary>
    /// <param name="mlContext">The context whose catalog builds the stages.</param>
    /// <param name="model">The network: a checkpoint folder, an ONNX model or tensors in memory.</param>
    /// <param name="task">The model stage.</param>
    /// <param name="options">Processor, input and ONNX Runtime settings; null for the defaults.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write.</param>
    public static void Package(MLContext mlContext, BeitModelSource model, BeitOnnxTask task, string modelPath, Options? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        AtomicFile.CheckWritable(modelPath);
        var input = EmptyInput(mlContext, options);
        using var fitted = CreateEstimator(mlContext, model, task, options).Fit(input);
        Save(mlContext, fitted, input.Schema, modelPath);
    }

    private static BeitImageProcessor ProcessorFor(BeitModelSource model, Options options)
    {
        if (options.Processor is { } processor) return processor;
        if (model.CheckpointFolder is { } folder) return BeitImageProcessorEstimator.LoadProcessor(folder);
        if (model.GivenConfig is { } config) return BeitImageProcessorEstimator.ForConfig(config);
        throw new ArgumentException(
            $"BeitPipelines: '{model.Name}' is an ONNX model, which does not say how to preprocess; set Options.Processor " +
            "(e.g. BeitImageProcessorEstimator.LoadProcessor(\"preprocessor_config.json\")).", nameof(options));
    }

    // The pipeline's ONNX Runtime and export settings go to its model stage (whose input column defaults to PixelValues).
    private static T Stage<T>(T stage, Options options) where T : BeitOnnxStageOptions
    {
        stage.GpuDeviceId = options.GpuDeviceId;
        stage.FallbackToCpu = options.FallbackToCpu;
        stage.IntraOpNumThreads = options.IntraOpNumThreads;
        stage.InterOpNumThreads = options.InterOpNumThreads;
        stage.ExportOptions = options.ExportOptions;
        return stage;
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class BytesRow
    {
        [VectorType]
        public byte[] ImageBytes { get; set; } = [];
    }
}
