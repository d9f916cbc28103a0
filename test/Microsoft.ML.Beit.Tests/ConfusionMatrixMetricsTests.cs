using Microsoft.ML.Beit.Evaluation;

namespace Beit.Tests;

public class ConfusionMatrixMetricsTests
{
    [Fact]
    public void ClassificationMetricsMatchHandComputedValues()
    {
        var m = new ConfusionMatrixMetrics(["a", "b", "c"]);
        int[] truth = [0, 0, 0, 1, 1, 2];
        int[] pred = [0, 0, 1, 1, 2, 2];
        for (int i = 0; i < truth.Length; i++) m.Add(truth[i], pred[i]);
        Assert.Equal(4.0 / 6, m.Accuracy, 12);
        // a: P=1, R=2/3, F1=0.8; b: P=1/2, R=1/2, F1=0.5; c: P=1/2, R=1, F1=2/3
        Assert.Equal((0.8 + 0.5 + 2.0 / 3) / 3, m.MacroF1, 12);
        Assert.Equal(1, m[0, 1]);
        Assert.Contains("truth", m.ToText());
    }

    [Fact]
    public void SegmentationMetricsSkipIgnoredPixelsAndAbsentClasses()
    {
        var m = new ConfusionMatrixMetrics(["bg", "cat", "dog", "never"]);
        m.AddMaps(new[] { 0, 0, 1, 1, 255, 2 }, new[] { 0, 1, 1, 1, 3, 2 });
        Assert.Equal(5, m.Total);
        Assert.Equal(4.0 / 5, m.Accuracy, 12);
        // IoU: bg 1/2, cat 2/3, dog 1; "never" neither occurs nor is predicted (the 255 pixel was ignored) → skipped.
        Assert.True(double.IsNaN(m.IoU(3)));
        Assert.Equal((0.5 + 2.0 / 3 + 1) / 3, m.MeanIoU, 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Add(7, 0));
    }
}
