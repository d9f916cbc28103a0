namespace Microsoft.ML.Beit;

/// <summary>
/// The input column of a saved image model, as in Model Builder's <c>ModelInput</c>: an image file path
/// (<see cref="BeitPipelines.ImageInput.Paths"/>, column <c>ImagePath</c>) or the encoded image bytes
/// (<see cref="BeitPipelines.ImageInput.Bytes"/>, column <c>ImageSource</c>, a <c>byte[]</c>, Model Builder's name).
/// </summary>
public static class BeitModelInputs
{
    /// <summary>The input column of a paths model.</summary>
    public const string ImagePathColumn = BeitPipelines.ImagePathColumn;

    /// <summary>The input column of a bytes model (Model Builder's <c>ModelInput.ImageSource</c>).</summary>
    public const string ImageSourceColumn = "ImageSource";

    /// <summary>The input column name of <paramref name="input"/>.</summary>
    public static string ColumnName(BeitPipelines.ImageInput input) => input switch
    {
        BeitPipelines.ImageInput.Paths => ImagePathColumn,
        BeitPipelines.ImageInput.Bytes => ImageSourceColumn,
        _ => throw new ArgumentOutOfRangeException(nameof(input), input, "unknown image input"),
    };

    /// <summary>Parses the command-line spelling: <c>path</c> or <c>bytes</c>.</summary>
    /// <exception cref="ArgumentException">Anything else.</exception>
    public static BeitPipelines.ImageInput Parse(string value) => value switch
    {
        "path" => BeitPipelines.ImageInput.Paths,
        "bytes" => BeitPipelines.ImageInput.Bytes,
        _ => throw new ArgumentException($"'{value}' is not a model input; use path or bytes.", nameof(value)),
    };

    /// <summary>
    /// <see cref="BeitPipelines"/> options for a Model Builder-style classification zip taking <paramref name="input"/>
    /// under its column name (<see cref="ColumnName"/>).
    /// </summary>
    public static BeitPipelines.Options Options(BeitPipelines.ImageInput input) =>
        new() { Input = input, InputColumnName = ColumnName(input) };

    /// <summary>
    /// Fits the classification pipeline of <paramref name="model"/> with <c>PredictedLabel</c> mapped back to its name
    /// (<c>MapKeyToValue</c>), so a Model Builder-style <c>ModelOutput { string PredictedLabel; float[] Score; }</c>
    /// reads it, and saves it atomically. Predicting needs only the input column (no <c>Label</c>).
    /// </summary>
    /// <param name="mlContext">The context.</param>
    /// <param name="model">The network.</param>
    /// <param name="modelPath">The <c>model.zip</c> to write.</param>
    /// <param name="options">Pipeline options (<see cref="Options(BeitPipelines.ImageInput)"/> for the input column).</param>
    /// <returns>The number of labels.</returns>
    public static int SaveClassifier(MLContext mlContext, Estimators.BeitModelSource model, string modelPath, BeitPipelines.Options options)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        IO.AtomicFile.CheckWritable(modelPath);
        var input = BeitPipelines.EmptyInput(mlContext, options);
        using var fitted = BeitPipelines.CreateEstimator(mlContext, model, Onnx.BeitOnnxTask.ImageClassification, options)
            .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(input);
        BeitPipelines.Save(mlContext, fitted, input.Schema, modelPath);
        return Estimators.BeitClassifierTransformer.FromLoaded(fitted).LabelNames.Count;
    }
}
