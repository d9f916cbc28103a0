using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Pretraining;
using Microsoft.ML.Beit.Training.SemanticSegmentation;

namespace Microsoft.ML;

/// <summary>
/// ML.NET catalog entry for BEiT training: <c>mlContext.BeitTrainers()</c>. Every trainer it creates is an ML.NET
/// estimator of the user's <see cref="MLContext"/>: training messages (the plan, progress about every tenth of an
/// epoch, each epoch's metrics) go to <c>MLContext.Log</c>, and <c>Fit</c> returns a scoring transformer of that
/// context. (ML.NET does not expose a trainer catalog's context to other assemblies, hence an entry on the context.)
/// </summary>
public static class BeitTrainingCatalog
{
    /// <summary>The BEiT trainers of <paramref name="mlContext"/>.</summary>
    public static BeitTrainers BeitTrainers(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new BeitTrainers(mlContext);
    }
}

/// <summary>The BEiT trainers of one <see cref="MLContext"/>; get it with <c>mlContext.BeitTrainers()</c>.</summary>
public sealed class BeitTrainers
{
    private readonly MLContext _mlContext;

    internal BeitTrainers(MLContext mlContext) => _mlContext = mlContext;

    /// <summary>
    /// BEiT image classification with the paper's fine-tuning recipe: a <c>PixelValues</c> column and a key <c>Label</c>
    /// in, a <see cref="Beit.Estimators.BeitClassifierTransformer"/> (<c>Score</c>, <c>PredictedLabel</c>) out.
    /// </summary>
    /// <param name="labelColumnName">Key column of class labels.</param>
    /// <param name="featureColumnName">Pixel values from <c>mlContext.Transforms.BeitImageProcessor</c>.</param>
    /// <param name="checkpointFolder">A Hugging Face (or our pre-trained) checkpoint to start from; null trains from scratch.</param>
    /// <param name="epochs">Passes over the data; null lets the trainer choose them (and every other unset option) from the data.</param>
    public BeitImageClassificationTrainer ImageClassification(string labelColumnName = "Label", string featureColumnName = "PixelValues",
        string? checkpointFolder = null, int? epochs = null)
    {
        // The trained model is scored through ONNX Runtime: no native runtime fails now, not after the last epoch.
        Microsoft.ML.Beit.Scoring.BeitOnnxRuntime.EnsureAvailable("BeitTrainers.ImageClassification");
        var options = new BeitImageClassificationTrainer.Options
        {
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            CheckpointFolder = checkpointFolder,
        };
        if (epochs is int e) options.Epochs = e;
        return new BeitImageClassificationTrainer(_mlContext, options);
    }

    /// <summary>BEiT image classification with every option.</summary>
    /// <param name="options">Trainer options.</param>
    public BeitImageClassificationTrainer ImageClassification(BeitImageClassificationTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Microsoft.ML.Beit.Scoring.BeitOnnxRuntime.EnsureAvailable("BeitTrainers.ImageClassification");
        return new BeitImageClassificationTrainer(_mlContext, options);
    }

    /// <summary>
    /// BEiT semantic segmentation (UperNet + FCN auxiliary head): a <c>PixelValues</c> column and a per-pixel label map in,
    /// a <see cref="Beit.Estimators.BeitSegmenterTransformer"/> out.
    /// </summary>
    /// <param name="options">Trainer options (segmentation defaults when null).</param>
    public BeitSemanticSegmentationTrainer SemanticSegmentation(BeitSemanticSegmentationTrainer.Options? options = null)
    {
        Microsoft.ML.Beit.Scoring.BeitOnnxRuntime.EnsureAvailable("BeitTrainers.SemanticSegmentation");
        return new(_mlContext, options ?? new BeitSemanticSegmentationTrainer.Options());
    }

    /// <summary>
    /// BEiT masked-image-modeling pre-training on unlabeled images: a <c>PixelValues</c> column in, a
    /// <see cref="Beit.Estimators.BeitFeaturizerTransformer"/> of the pre-trained backbone out.
    /// </summary>
    /// <param name="options">Trainer options (the paper's pre-training settings when null).</param>
    public BeitMaskedImageModelingTrainer MaskedImageModeling(BeitMaskedImageModelingTrainer.Options? options = null)
    {
        Microsoft.ML.Beit.Scoring.BeitOnnxRuntime.EnsureAvailable("BeitTrainers.MaskedImageModeling");
        return new(_mlContext, options ?? new BeitMaskedImageModelingTrainer.Options());
    }
}
