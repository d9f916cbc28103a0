using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

public sealed class BeitFeaturizerAndSegmenterTests(ITestOutputHelper output)
{
    /// <summary>Stated tolerance for ONNX Runtime vs the Hugging Face reference (fp32, tiny models).</summary>
    private const float Tolerance = 1e-5f;

    private void AssertClose(string what, float[] actual, float[] expected)
    {
        float diff = TestMath.MaxAbsDiff(actual, expected);
        output.WriteLine($"{what}: max abs diff {diff:E2}");
        Assert.True(diff <= Tolerance, $"{what}: {diff}");
    }

    [Fact]
    public void FeaturizerMatchesHuggingFacePoolerClsAndPatchTokens()
    {
        var ml = new MLContext();
        var io = PipelineData.Io("cls_relpos");
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 2).Select(i => new PixelRow { PixelValues = PipelineData.Item(io["pixel_values"], i) }).ToArray());
        using var featurizer = ml.Transforms.BeitFeaturizer(new BeitFeaturizerEstimator.Options
        {
            Model = Fixtures.Tiny("cls_relpos"),
            ClsTokenColumnName = "Cls",
            PatchTokensColumnName = "Patches",
        }).Fit(data);
        Assert.Equal(32, featurizer.FeatureSize);
        var scored = featurizer.Transform(data);
        var features = PipelineData.Floats(scored, "Features");
        var cls = PipelineData.Floats(scored, "Cls");
        var patches = PipelineData.Floats(scored, "Patches");
        // With mean pooling the encoder output is not normed: last_hidden_state = hidden_states[4].
        var last = io["hidden_states.4"];
        for (int i = 0; i < 2; i++)
        {
            AssertClose($"row {i} Features vs pooler_output", features[i], PipelineData.Item(io["pooler_output"], i));
            var sequence = PipelineData.Item(last, i);
            AssertClose($"row {i} ClsToken vs last_hidden_state[:, 0]", cls[i], sequence[..32]);
            AssertClose($"row {i} PatchTokens vs last_hidden_state[:, 1:]", patches[i], sequence[32..]);
        }
        Assert.Equal(16 * 32, patches[0].Length);
    }

    private static IDataView SegmentationRows(MLContext ml, (int Height, int Width)[] sizes)
    {
        var io = PipelineData.Io("seg_uper");
        // The image column only gives each row's original size here; the pixels are the fixture's pixel_values.
        return ml.Data.LoadFromEnumerable(sizes.Select((s, i) => new SegmentationRow
        {
            PixelValues = PipelineData.Item(io["pixel_values"], i),
            Image = BeitImageColumn.Encode(new RgbImage(new PixelSize(s.Height, s.Width))),
        }).ToArray());
    }

    [Fact]
    public void SegmenterLabelMapsMatchPostProcessSemanticSegmentationExactly()
    {
        var ml = new MLContext();
        var io = PipelineData.Io("seg_uper");
        var data = SegmentationRows(ml, [(50, 70), (64, 64)]);
        using var segmenter = ml.Transforms.BeitSegmenter(new BeitSegmenterEstimator.Options { Model = Fixtures.Tiny("seg_uper"), ScoreColumnName = "Score" }).Fit(data);
        Assert.Equal(6, segmenter.LabelNames.Count);
        var scored = segmenter.Transform(data);
        var maps = PipelineData.Ints(scored, "PredictedLabel");
        var sizes = PipelineData.Ints(scored, "PredictedLabelSize");
        var scores = PipelineData.Floats(scored, "Score");
        for (int i = 0; i < 2; i++)
        {
            var expected = io[$"post.{i}"].ToInt64Array().Select(v => (int)v).ToArray();
            Assert.Equal([(int)io[$"post.{i}"].Shape[0], (int)io[$"post.{i}"].Shape[1]], sizes[i]);
            int differ = maps[i].Zip(expected).Count(p => p.First != p.Second);
            output.WriteLine($"row {i}: {maps[i].Length} pixels, {differ} labels differ from post_process_semantic_segmentation");
            Assert.Equal(expected, maps[i]);

            // Score: softmax over classes of the reference logits [6, 32, 32].
            var logits = PipelineData.Item(io["logits"], i);
            var probabilities = new float[logits.Length];
            for (int p = 0; p < 32 * 32; p++)
            {
                var column = Enumerable.Range(0, 6).Select(c => logits[c * 1024 + p]).ToArray();
                var soft = PipelineData.Softmax(column);
                for (int c = 0; c < 6; c++) probabilities[c * 1024 + p] = soft[c];
            }
            AssertClose($"row {i} Score vs softmax(HF logits)", scores[i], probabilities);
        }
    }

    [Fact]
    public void SegmenterWithoutImageColumnGivesMapsAtTheModelInputSize()
    {
        var ml = new MLContext();
        var io = PipelineData.Io("seg_uper");
        var data = SegmentationRows(ml, [(1, 1), (1, 1)]);
        using var segmenter = ml.Transforms.BeitSegmenter(Fixtures.Tiny("seg_uper"), imageColumnName: null).Fit(data);
        var scored = segmenter.Transform(data);
        Assert.Equal([64, 64], PipelineData.Ints(scored, "PredictedLabelSize")[0]);
        // post.1 is image 1 post-processed at (64, 64), the input size.
        Assert.Equal(io["post.1"].ToInt64Array().Select(v => (int)v).ToArray(), PipelineData.Ints(scored, "PredictedLabel")[1]);
    }

    [Fact]
    public void SegmentationEvaluatorComputesMeanIoUAndPixelAccuracy()
    {
        var ml = new MLContext();
        // 3 classes; truth 255 is ignored.
        var rows = new[]
        {
            new MapRow { Label = [0, 0, 1, 1, 2, 255], PredictedLabel = [0, 1, 1, 1, 2, 0] },
            new MapRow { Label = [2, 2, 0], PredictedLabel = [2, 0, 0] },
        };
        var metrics = ml.MulticlassClassification.EvaluateBeitSegmentation(ml.Data.LoadFromEnumerable(rows), ["a", "b", "c"]);
        // Confusion (truth × predicted): a: [2,1,0], b: [0,2,0], c: [1,0,2]; 8 pixels, 6 correct.
        Assert.Equal(8, metrics.Pixels);
        Assert.Equal(6.0 / 8, metrics.PixelAccuracy, 12);
        double iouA = 2.0 / (3 + 3 - 2), iouB = 2.0 / (2 + 3 - 2), iouC = 2.0 / (3 + 2 - 2);
        Assert.Equal([iouA, iouB, iouC], metrics.PerClassIoU);
        Assert.Equal((iouA + iouB + iouC) / 3, metrics.MeanIoU, 12);
        Assert.Equal((2.0 / 3 + 1 + 2.0 / 3) / 3, metrics.MeanAccuracy, 12);

        // do_reduce_labels: 0 becomes ignored, v becomes v − 1.
        var reduced = ml.MulticlassClassification.EvaluateBeitSegmentation(
            ml.Data.LoadFromEnumerable([new MapRow { Label = [0, 1, 2, 3], PredictedLabel = [2, 0, 1, 1] }]), ["a", "b", "c"], reduceLabels: true);
        Assert.Equal(3, reduced.Pixels);
        Assert.Equal(2.0 / 3, reduced.PixelAccuracy, 12);

        var mismatch = Assert.Throws<InvalidDataException>(() => ml.MulticlassClassification.EvaluateBeitSegmentation(
            ml.Data.LoadFromEnumerable([rows[0], new MapRow { Label = [1], PredictedLabel = [1, 1] }]), ["a", "b", "c"]));
        Assert.Equal("Row 1: column 'Label' holds 1 pixels but 'PredictedLabel' holds 2.", mismatch.Message);
        var outOfRange = Assert.Throws<InvalidDataException>(() => ml.MulticlassClassification.EvaluateBeitSegmentation(
            ml.Data.LoadFromEnumerable([new MapRow { Label = [7], PredictedLabel = [1] }]), ["a", "b", "c"]));
        Assert.StartsWith("Row 0: label 7 is not in 0..2", outOfRange.Message);
    }

    [Fact]
    public void SegmentationPipelineEvaluatesAgainstLabelMapFiles()
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        // Ground truth = the segmenter's own prediction for chelsea.png, written as a grey PNG: mIoU and accuracy must be 1.
        var data = PipelineData.Paths(ml, [Fixtures.Preproc("chelsea.png")]);
        using var model = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("seg_uper")))
            .Append(ml.Transforms.BeitSegmenter(Fixtures.Tiny("seg_uper")))
            .Fit(data);
        var map = PipelineData.Ints(model.Transform(data), "PredictedLabel")[0];
        var size = PipelineData.Ints(model.Transform(data), "PredictedLabelSize")[0];
        Assert.Equal([300, 451], size);
        string truthPath = Path.Combine(dir, "truth.png");
        TestPng.WriteGrey(truthPath, size[1], size[0], map.Select(v => (byte)v).ToArray());

        var labelled = ml.Data.LoadFromEnumerable([new LabelledImageRow { ImagePath = Fixtures.Preproc("chelsea.png"), Label = truthPath }]);
        var metrics = ml.MulticlassClassification.EvaluateBeitSegmentation(model.Transform(labelled), model.LastTransformer.LabelNames);
        Assert.Equal(300 * 451, metrics.Pixels);
        Assert.Equal(1.0, metrics.PixelAccuracy);
        Assert.Equal(1.0, metrics.MeanIoU);
    }

    public sealed class SegmentationRow
    {
        public float[] PixelValues { get; set; } = [];
        public byte[] Image { get; set; } = [];
    }

    public sealed class MapRow
    {
        public int[] Label { get; set; } = [];
        public int[] PredictedLabel { get; set; } = [];
    }
}
