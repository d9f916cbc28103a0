using System.Reflection;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>
/// ML.NET catalog extensions for BEiT training: <c>mlContext.MulticlassClassification.Trainers.Beit(...)</c>, an
/// estimator that fine-tunes (or trains from scratch) BEiT on a <c>PixelValues</c> column and a key <c>Label</c>, and
/// returns the ONNX-backed scoring transformer that saves to <c>model.zip</c>. Training messages (the plan, progress
/// about every tenth of an epoch, each epoch's metrics) go to <c>MLContext.Log</c>.
/// </summary>
public static class BeitTrainingCatalog
{
    /// <summary>BEiT image classification with the paper's fine-tuning recipe.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="labelColumnName">Key column of class labels.</param>
    /// <param name="featureColumnName">Pixel values from <c>mlContext.Transforms.BeitImageProcessor</c>.</param>
    /// <param name="checkpointFolder">A Hugging Face (or our pre-trained) checkpoint to start from; null trains from scratch.</param>
    /// <param name="epochs">Passes over the data; null lets the trainer choose them (and every other unset option) from the data.</param>
    public static BeitImageClassificationTrainer Beit(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "PixelValues", string? checkpointFolder = null, int? epochs = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        // The trained model is scored through ONNX Runtime: no native runtime fails now, not after the last epoch.
        Microsoft.ML.Beit.Scoring.BeitOnnxRuntime.EnsureAvailable("Trainers.Beit");
        var options = new BeitImageClassificationTrainer.Options
        {
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            CheckpointFolder = checkpointFolder,
        };
        if (epochs is int e) options.Epochs = e;
        return new BeitImageClassificationTrainer(options) { Environment = EnvironmentOf(catalog) };
    }

    /// <summary>BEiT image classification with every option.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="options">Trainer options.</param>
    public static BeitImageClassificationTrainer Beit(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        BeitImageClassificationTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        Microsoft.ML.Beit.Scoring.BeitOnnxRuntime.EnsureAvailable("Trainers.Beit");
        return new BeitImageClassificationTrainer(options) { Environment = EnvironmentOf(catalog) };
    }

    // ML.NET exposes a catalog's environment only to its own assemblies (through the internal IInternalCatalog).
    // Reading it lets training messages reach MLContext.Log as ML.NET's trainers' do; a test fails if a new ML.NET
    // moves it, and training itself never depends on it (Progress/EpochCallback still report).
    private static IHostEnvironment? EnvironmentOf(object catalog) =>
        catalog.GetType().GetInterfaces().FirstOrDefault(i => i.Name == "IInternalCatalog")
            ?.GetProperty("Environment", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)?.GetValue(catalog) as IHostEnvironment;
}
