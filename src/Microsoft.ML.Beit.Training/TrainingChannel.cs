using Microsoft.ML.Runtime;

namespace Microsoft.ML.Beit.Training;

/// <summary>The ML.NET channel a trainer logs to: the user's <see cref="MLContext"/> (an <see cref="IHostEnvironment"/>), or none.</summary>
internal static class TrainingChannel
{
    /// <summary>A started channel named after the trainer, or null without a context.</summary>
    public static IChannel? Start(MLContext? mlContext, string trainerName) =>
        (mlContext as IHostEnvironment)?.Register(trainerName).Start("Training");

    /// <summary>The trainer's context for building ML.NET components; a trainer made without one cannot be an estimator.</summary>
    public static MLContext Require(MLContext? mlContext, string catalogEntry) => mlContext ?? throw new InvalidOperationException(
        $"This trainer has no MLContext; create the estimator with mlContext.BeitTrainers().{catalogEntry}(...) (or the MLContext constructor).");
}
