using System.Diagnostics;
using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Xunit.Abstractions;

namespace Beit.Tests.Safety;

/// <summary>One bad image costs only its own row when <c>LoadBeitImages</c> has an error column.</summary>
public sealed class PartialFailureTests(ITestOutputHelper output)
{
    private static IEstimator<ITransformer> Classify(MLContext ml, string? errorColumn) =>
        ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { ErrorColumnName = errorColumn })
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")));

    [Fact]
    [Trait("Category", "Slow")]
    public void OneUndecodableImageOf43LeavesTheOther42ScoredExactlyAsAlone()
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        string bad = Path.Combine(dir, "bad.png");
        File.WriteAllText(bad, "not an image");
        var photos = PipelineData.PhotoPaths();
        var paths = Enumerable.Range(0, 43).Select(i => photos[i % photos.Length]).ToArray();
        paths[29] = bad;
        var good = paths.Where(p => p != bad).ToArray();

        // Without the error column (the default), the bad row still throws: nothing comes back.
        using (var strict = (IDisposable)Classify(ml, null).Fit(PipelineData.Paths(ml, paths)))
            Assert.Throws<BeitInputException>(() => PipelineData.Floats(((ITransformer)strict).Transform(PipelineData.Paths(ml, paths)), "Score"));

        using var model = (IDisposable)Classify(ml, "Error").Fit(PipelineData.Paths(ml, paths));
        var transformer = (ITransformer)model;
        var sw = Stopwatch.StartNew();
        var scored = transformer.Transform(PipelineData.Paths(ml, paths));
        var scores = PipelineData.Floats(scored, "Score");
        var errors = PipelineData.Strings(scored, "Error");
        var labels = PipelineData.KeyNames(scored, "PredictedLabel");
        output.WriteLine($"43 rows, one bad, in {sw.ElapsedMilliseconds} ms; reason: {errors[29]}");

        Assert.Equal(43, scores.Count);
        Assert.Equal(42, errors.Count(e => e.Length == 0));
        Assert.StartsWith($"Column 'ImagePath' ('{bad}'): cannot decode the image: not a PNG, JPEG, BMP, GIF or WebP image", errors[29]);
        Assert.All(scores[29], v => Assert.True(float.IsNaN(v)));
        Assert.Equal("<missing>", labels[29]); // the key's missing value 0

        // The 42 good rows are bit-identical to scoring them without the bad one.
        var alone = transformer.Transform(PipelineData.Paths(ml, good));
        var aloneScores = PipelineData.Floats(alone, "Score");
        var kept = scores.Where((_, i) => i != 29).ToList();
        Assert.Equal(aloneScores, kept);
        Assert.Equal(PipelineData.KeyNames(alone, "PredictedLabel"), labels.Where((_, i) => i != 29));

        // The user's filter: only the good rows.
        var filtered = ml.Data.FilterByCustomPredicate<ErrorRow>(scored, r => r.Error.Length > 0);
        Assert.Equal(aloneScores, PipelineData.Floats(filtered, "Score"));
    }

    [Fact]
    public void ErrorColumnSurvivesTheZipAndSegmenterAndFeaturizerGiveEmptyOrNaN()
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        string missing = Path.Combine(dir, "gone.png"), zip = Path.Combine(dir, "seg.zip");
        string[] paths = [Fixtures.Preproc("camera.png"), missing];
        var data = PipelineData.Paths(ml, paths);
        var load = ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { ErrorColumnName = "Why" });
        using (var segmenter = load.Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("seg_uper"))).Append(ml.Transforms.BeitSegmenter(Fixtures.Tiny("seg_uper"))).Fit(data))
            Microsoft.ML.Beit.IO.AtomicFile.Write(zip, tmp => ml.Model.Save(segmenter, data.Schema, tmp));
        var loaded = Microsoft.ML.Beit.BeitModelZip.Load(ml, zip, out _);
        using (loaded as IDisposable)
        {
            Assert.Equal("Why", LoadBeitImagesTransformer.FromLoaded(loaded).ErrorColumnName);
            var scored = loaded.Transform(data);
            var why = PipelineData.Strings(scored, "Why");
            Assert.Equal("", why[0]);
            Assert.Equal($"Column 'ImagePath' ('{missing}'): the image file does not exist.", why[1]);
            var sizes = PipelineData.Ints(scored, "PredictedLabelSize");
            Assert.Equal([0, 0], sizes[1]);
            Assert.NotEqual([0, 0], sizes[0]);
        }

        using var featurizer = load.Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos"))).Append(ml.Transforms.BeitFeaturizer(Fixtures.Tiny("cls_relpos"))).Fit(data);
        var features = PipelineData.Floats(featurizer.Transform(data), "Features");
        Assert.All(features[0], v => Assert.True(float.IsFinite(v)));
        Assert.All(features[1], v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void EncodedBytesWithAnErrorColumnGiveTheMissingImageAndTheReason()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[]
        {
            new BytesRow { Bytes = File.ReadAllBytes(Fixtures.Preproc("camera.png")) },
            new BytesRow { Bytes = "junk"u8.ToArray() },
        });
        var load = ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { InputColumnName = "Bytes", ErrorColumnName = "Error" }).Fit(data);
        var loaded = load.Transform(data);
        var images = PipelineData.Bytes(loaded, "Image");
        Assert.True(BeitImageColumn.TryGetSize(images[0], out _));
        Assert.True(BeitImageColumn.IsMissing(images[1]));
        Assert.Equal(["", "Column 'Bytes': cannot decode the image: not a PNG, JPEG, BMP, GIF or WebP image: unrecognised leading bytes 6A756E6B."],
            PipelineData.Strings(loaded, "Error"));
        var pixels = PipelineData.Floats(ml.Transforms.BeitImageProcessor().Fit(loaded).Transform(loaded), "PixelValues");
        Assert.Equal(3 * 224 * 224, pixels[0].Length);
        Assert.True(BeitImageColumn.IsMissing(images[1]) && pixels[1] is [float nan] && float.IsNaN(nan));
    }

    private sealed class BytesRow
    {
        public byte[] Bytes { get; set; } = [];
    }

    private sealed class ErrorRow
    {
        public string Error { get; set; } = "";
    }
}
