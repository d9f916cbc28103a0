namespace Microsoft.ML.Beit.Training.Optimization;

/// <summary>
/// BEiT's per-step schedule: linear warm-up from <see cref="WarmupStart"/> to the base rate, then a half-cosine
/// towards <see cref="MinLr"/>, reached one step after the last (unilm's <c>cosine_scheduler</c>).
/// </summary>
/// <param name="BaseLr">Peak learning rate.</param>
/// <param name="MinLr">Rate at the final step.</param>
/// <param name="TotalSteps">Number of optimizer steps in the whole run.</param>
/// <param name="WarmupSteps">Steps of linear warm-up.</param>
/// <param name="WarmupStart">Rate at step 0.</param>
internal sealed record LearningRateSchedule(double BaseLr, double MinLr, long TotalSteps, long WarmupSteps, double WarmupStart = 0)
{
    /// <summary>The learning rate of optimizer step <paramref name="step"/> (0-based).</summary>
    public double At(long step)
    {
        if (TotalSteps <= 0) throw new InvalidOperationException("TotalSteps must be positive.");
        if (step < WarmupSteps) return WarmupStart + (BaseLr - WarmupStart) * step / WarmupSteps;
        long decaySteps = TotalSteps - WarmupSteps;
        if (decaySteps <= 0) return BaseLr;
        double t = Math.Min(1.0, (double)(step - WarmupSteps) / decaySteps);
        return MinLr + 0.5 * (BaseLr - MinLr) * (1 + Math.Cos(Math.PI * t));
    }
}
