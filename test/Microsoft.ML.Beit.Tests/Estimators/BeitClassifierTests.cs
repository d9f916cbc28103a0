using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Data;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

public sealed class BeitClassifierTests(ITestOutputHelper output)
{
    /// <summary>Stated tolerance for ONNX Runtime vs the Hugging Face reference (fp32, tiny model).</summary>
    private const float Tolerance = 1e-5f;

    [Fact]
    public void ScoresMatchHuggingFaceOnFixturePixels()
    {
        var ml = new MLContext(seed: 1);
        var io = PipelineData.Io("cls_relpos");
        var rows = Enumerable.Range(0, 2).Select(i => new PixelRow { PixelValues = PipelineData.Item(io["pixel_values"], i) }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var classifier = ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")).Fit(data);
        var scored = classifier.Transform(data);
        var scores = PipelineData.Floats(scored, "Score");
        var predicted = PipelineData.KeyNames(scored, "PredictedLabel");
        string[] names = ["cat", "dog", "bird", "fish", "horse"];
        Assert.Equal(names, classifier.LabelNames);
        for (int i = 0; i < 2; i++)
        {
            var expected = PipelineData.Softmax(PipelineData.Item(io["logits"], i));
            float diff = PipelineData.MaxAbsDiff(scores[i], expected);
            output.WriteLine($"row {i}: Score vs softmax(HF logits) max abs diff {diff:E2}, predicted {predicted[i]}");
            Assert.True(diff <= Tolerance, $"row {i}: {diff}");
            Assert.Equal(names[Array.IndexOf(expected, expected.Max())], predicted[i]);
        }
    }

    [Fact]
    public void FullPipelineFromImageFiles()
    {
        var ml = new MLContext(seed: 1);
        var data = PipelineData.Paths(ml, PipelineData.PhotoPaths());
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var pipeline = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(checkpoint))
            .Append(ml.Transforms.BeitClassifier(checkpoint));
        using var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var scores = PipelineData.Floats(scored, "Score");
        var predicted = PipelineData.KeyNames(scored, "PredictedLabel");
        Assert.Equal(4, scores.Count);
        foreach (var (s, p) in scores.Zip(predicted))
        {
            output.WriteLine($"{p}: [{string.Join(", ", s.Select(v => v.ToString("F4")))}]");
            Assert.Equal(5, s.Length);
            Assert.InRange(s.Sum(), 0.9999f, 1.0001f);
        }
    }
}
