using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Evaluation;

namespace Microsoft.ML;

/// <summary>
/// ML.NET catalog extensions for BEiT: <c>mlContext.Transforms.LoadBeitImages</c>, <c>BeitImageProcessor</c>,
/// <c>BeitFeaturizer</c>, <c>BeitClassifier</c>, <c>BeitSegmenter</c>, and
/// <c>mlContext.MulticlassClassification.EvaluateBeitSegmentation</c>. Pipelines of these stages save to
/// <c>model.zip</c> as chains of ML.NET's built-in transformers and load with <c>mlContext.Model.Load</c>.
/// </summary>
public static class BeitCatalog
{
    /// <summary>Decodes images (paths in a text column, or encoded bytes) into a decoded-image column, Pillow-exact.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The decoded-image column to create.</param>
    /// <param name="inputColumnName">A text column of image paths or a vector of encoded image bytes.</param>
    public static LoadBeitImagesEstimator LoadBeitImages(this TransformsCatalog catalog, string outputColumnName = "Image", string inputColumnName = "ImagePath") =>
        new(catalog, new LoadBeitImagesEstimator.Options { OutputColumnName = outputColumnName, InputColumnName = inputColumnName });

    /// <summary>
    /// Decodes images whose paths are relative to <paramref name="imageFolder"/>, in the argument order of ML.NET's
    /// <c>LoadImages(outputColumnName, imageFolder, inputColumnName)</c>. A path that is absolute or leads out of the
    /// folder is a bad row and is never read (see <see cref="LoadBeitImagesEstimator.Options.ImageFolder"/>).
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The decoded-image column to create.</param>
    /// <param name="imageFolder">The folder the paths are relative to; null uses the paths as given.</param>
    /// <param name="inputColumnName">A text column of image paths.</param>
    public static LoadBeitImagesEstimator LoadBeitImages(this TransformsCatalog catalog, string outputColumnName, string? imageFolder, string inputColumnName) =>
        new(catalog, new LoadBeitImagesEstimator.Options { OutputColumnName = outputColumnName, InputColumnName = inputColumnName, ImageFolder = imageFolder });

    /// <summary>Decodes images with the given options.</summary>
    public static LoadBeitImagesEstimator LoadBeitImages(this TransformsCatalog catalog, LoadBeitImagesEstimator.Options options) => new(catalog, options);

    /// <summary>Decoded images → <c>pixel_values</c> <c>[3, H, W]</c>, exactly as Hugging Face's <c>BeitImageProcessor</c>.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="preprocessorConfigPath">
    /// A <c>preprocessor_config.json</c> or a checkpoint folder (see <see cref="BeitImageProcessorEstimator.LoadProcessor"/>);
    /// null for the processor's class defaults.
    /// </param>
    /// <param name="outputColumnName">The pixel-values column to create.</param>
    /// <param name="inputColumnName">The decoded-image column (from <c>LoadBeitImages</c>) or an <c>MLImage</c> column (from <c>LoadImages</c>).</param>
    public static BeitImageProcessorEstimator BeitImageProcessor(this TransformsCatalog catalog, string? preprocessorConfigPath = null,
        string outputColumnName = "PixelValues", string inputColumnName = "Image") =>
        new(catalog, new BeitImageProcessorEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            Processor = preprocessorConfigPath == null ? new() : BeitImageProcessorEstimator.LoadProcessor(preprocessorConfigPath),
        });

    /// <summary>Processes images with the given options.</summary>
    public static BeitImageProcessorEstimator BeitImageProcessor(this TransformsCatalog catalog, BeitImageProcessorEstimator.Options options) => new(catalog, options);

    /// <summary>Pixel values → <c>Features</c>, the pooled BEiT embedding.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="modelPath">A Hugging Face checkpoint folder or an ONNX features export.</param>
    /// <param name="outputColumnName">The embedding column to create.</param>
    /// <param name="inputColumnName">The pixel-values column.</param>
    public static BeitFeaturizerEstimator BeitFeaturizer(this TransformsCatalog catalog, string modelPath,
        string outputColumnName = "Features", string inputColumnName = "PixelValues") =>
        new(catalog, new BeitFeaturizerEstimator.Options { Model = BeitModelSource.FromPath(modelPath), OutputColumnName = outputColumnName, InputColumnName = inputColumnName });

    /// <summary>Extracts features with the given options (CLS token, patch tokens, in-memory models, threads).</summary>
    public static BeitFeaturizerEstimator BeitFeaturizer(this TransformsCatalog catalog, BeitFeaturizerEstimator.Options options) => new(catalog, options);

    /// <summary>Pixel values → <c>Score</c> (class probabilities) and <c>PredictedLabel</c> (a key with the class names).</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="modelPath">A <c>BeitForImageClassification</c> checkpoint folder or an ONNX classification export.</param>
    /// <param name="inputColumnName">The pixel-values column.</param>
    public static BeitClassifierEstimator BeitClassifier(this TransformsCatalog catalog, string modelPath, string inputColumnName = "PixelValues") =>
        new(catalog, new BeitClassifierEstimator.Options { Model = BeitModelSource.FromPath(modelPath), InputColumnName = inputColumnName });

    /// <summary>Classifies with the given options (column names, logits, label names, in-memory models, threads).</summary>
    public static BeitClassifierEstimator BeitClassifier(this TransformsCatalog catalog, BeitClassifierEstimator.Options options) => new(catalog, options);

    /// <summary>Pixel values → a per-pixel class map at each image's original size (<c>PredictedLabel</c>) and its size.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="modelPath">A <c>BeitForSemanticSegmentation</c> checkpoint folder or an ONNX segmentation export.</param>
    /// <param name="outputColumnName">The class-map column to create.</param>
    /// <param name="inputColumnName">The pixel-values column.</param>
    /// <param name="imageColumnName">The decoded-image column giving each row's original size; null for maps at the model's input size.</param>
    public static BeitSegmenterEstimator BeitSegmenter(this TransformsCatalog catalog, string modelPath, string outputColumnName = "PredictedLabel",
        string inputColumnName = "PixelValues", string? imageColumnName = "Image") =>
        new(catalog, new BeitSegmenterEstimator.Options
        {
            Model = BeitModelSource.FromPath(modelPath),
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            ImageColumnName = imageColumnName,
        });

    /// <summary>Segments with the given options (class scores, in-memory models, threads).</summary>
    public static BeitSegmenterEstimator BeitSegmenter(this TransformsCatalog catalog, BeitSegmenterEstimator.Options options) => new(catalog, options);

    /// <summary>Mean IoU and pixel accuracy of per-pixel class maps (see <see cref="BeitSegmentationEvaluator"/>).</summary>
    /// <param name="catalog">The multiclass classification catalog.</param>
    /// <param name="data">Scored data.</param>
    /// <param name="classNames">The classes, by index (e.g. <c>BeitSegmenterTransformer.LabelNames</c>).</param>
    /// <param name="labelColumnName">Ground truth: a numeric vector of class indices, or a text column of label-map image paths.</param>
    /// <param name="predictedLabelColumnName">The predicted class map.</param>
    /// <param name="ignoreIndex">Ground-truth value to skip.</param>
    /// <param name="reduceLabels">Apply <c>do_reduce_labels</c> to the ground truth first.</param>
    public static BeitSegmentationMetrics EvaluateBeitSegmentation(this MulticlassClassificationCatalog catalog, IDataView data,
        IReadOnlyList<string> classNames, string labelColumnName = "Label", string predictedLabelColumnName = "PredictedLabel",
        int ignoreIndex = 255, bool reduceLabels = false)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return BeitSegmentationEvaluator.Evaluate(data, classNames, labelColumnName, predictedLabelColumnName, ignoreIndex, reduceLabels);
    }
}
