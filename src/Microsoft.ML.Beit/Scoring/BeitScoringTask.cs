using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>What a packaged model does: its model stage (<c>BeitClassifier</c>, <c>BeitFeaturizer</c> or <c>BeitSegmenter</c>).</summary>
public enum BeitScoringTask
{
    /// <summary><c>BeitClassifier</c>: probabilities over labels.</summary>
    ImageClassification,

    /// <summary><c>BeitFeaturizer</c>: one pooled embedding per image.</summary>
    Features,

    /// <summary><c>BeitSegmenter</c>: a class per pixel, at the image's size.</summary>
    SemanticSegmentation,
}

/// <summary>Finds the model stage of a loaded pipeline, for the batch scorer and the server alike.</summary>
internal static class BeitScoringTasks
{
    /// <summary>What a checkpoint folder scores as, from its <c>architectures</c>: a segmenter, a classifier, else features.</summary>
    public static BeitScoringTask ForCheckpoint(BeitConfig config)
    {
        var archs = config.Architectures ?? [];
        return archs.Any(a => a.Contains("SemanticSegmentation", StringComparison.Ordinal)) ? BeitScoringTask.SemanticSegmentation
            : archs.Any(a => a.Contains("ImageClassification", StringComparison.Ordinal)) ? BeitScoringTask.ImageClassification
            : BeitScoringTask.Features;
    }

    /// <summary>The exporter's task for a scoring task.</summary>
    public static Onnx.BeitOnnxTask OnnxTask(BeitScoringTask task) => task switch
    {
        BeitScoringTask.ImageClassification => Onnx.BeitOnnxTask.ImageClassification,
        BeitScoringTask.SemanticSegmentation => Onnx.BeitOnnxTask.SemanticSegmentation,
        _ => Onnx.BeitOnnxTask.Features,
    };

    public static (BeitScoringTask Task, BeitStageConfig Config)? Find(ITransformer loaded)
    {
        foreach (var (task, find) in new (BeitScoringTask, Func<ITransformer, BeitTransformerBase>)[]
        {
            (BeitScoringTask.ImageClassification, BeitClassifierTransformer.FromLoaded),
            (BeitScoringTask.SemanticSegmentation, BeitSegmenterTransformer.FromLoaded),
            (BeitScoringTask.Features, BeitFeaturizerTransformer.FromLoaded),
        })
        {
            try
            {
                return (task, find(loaded).StageConfig);
            }
            catch (ArgumentException)
            {
                // Not this stage: try the next.
            }
        }
        return null;
    }
}
