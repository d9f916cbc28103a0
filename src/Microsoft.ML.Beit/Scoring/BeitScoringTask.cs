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
