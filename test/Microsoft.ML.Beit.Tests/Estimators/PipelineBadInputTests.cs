using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary>A missing file, a corrupt image or the wrong model give clear errors naming the column and the row or source.</summary>
public sealed class PipelineBadInputTests(ITestOutputHelper output)
{
    private static Microsoft.ML.Data.EstimatorChain<BeitClassifierTransformer> Classify(MLContext ml, string? processorConfig = "cls_relpos") =>
        ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(processorConfig == null ? null : Fixtures.Tiny(processorConfig)))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")));

    private BeitInputException ScoreAll(MLContext ml, IEstimator<ITransformer> pipeline, IDataView data)
    {
        using var model = (IDisposable)pipeline.Fit(data);
        var e = Assert.Throws<BeitInputException>(() => PipelineData.Floats(((ITransformer)model).Transform(data), "Score"));
        output.WriteLine(e.Message);
        return e;
    }

    [Fact]
    public void MissingFileNamesColumnRowAndPath()
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        string missing = dir.Combine("missing.png");
        // More rows than ML.NET's parallel cursors put in one batch, so the failing row is read by a worker thread.
        var paths = Enumerable.Repeat(Fixtures.Preproc("rgba_small.png"), 150).ToArray();
        paths[137] = missing;
        var e = ScoreAll(ml, Classify(ml), PipelineData.Paths(ml, paths));
        Assert.Equal("ImagePath", e.ColumnName);
        Assert.Equal(137, e.Row);
        Assert.Equal(missing, e.SourceName);
        Assert.StartsWith($"Column 'ImagePath', row 137 ('{missing}'): the image file does not exist.", e.Message);
        Assert.IsType<FileNotFoundException>(e.InnerException);
    }

    [Theory]
    [InlineData("garbage", ImageDecodingError.NotAnImage)]
    [InlineData("truncated", ImageDecodingError.Truncated)]
    [InlineData("empty", ImageDecodingError.Empty)]
    public void CorruptImageNamesColumnRowAndPath(string kind, ImageDecodingError error)
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        string bad = Path.Combine(dir, kind + ".png");
        byte[] png = File.ReadAllBytes(Fixtures.Preproc("chelsea.png"));
        File.WriteAllBytes(bad, kind switch
        {
            "garbage" => "this is not an image at all"u8.ToArray(),
            "truncated" => png[..(png.Length / 2)],
            _ => [],
        });
        var data = PipelineData.Paths(ml, [Fixtures.Preproc("camera.png"), Fixtures.Preproc("coffee.png"), bad]);
        var e = ScoreAll(ml, Classify(ml), data);
        Assert.Equal(("ImagePath", 2L, bad), (e.ColumnName, e.Row, e.SourceName));
        Assert.Contains("cannot decode the image", e.Message);
        Assert.Equal(error, Assert.IsType<ImageDecodingException>(e.InnerException).Error);
    }

    [Fact]
    public void CorruptBytesNameColumnAndRow()
    {
        var ml = new MLContext();
        var rows = new[]
        {
            new ImageBytesRow { ImageBytes = File.ReadAllBytes(Fixtures.Preproc("camera.png")) },
            new ImageBytesRow { ImageBytes = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3] },
        };
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.LoadBeitImages("Image", "ImageBytes")
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")));
        var e = ScoreAll(ml, pipeline, data);
        Assert.Equal(("ImageBytes", 1L, (string?)null), (e.ColumnName, e.Row, e.SourceName));
        Assert.StartsWith("Column 'ImageBytes', row 1: cannot decode the image", e.Message);
    }

    [Fact]
    public void PixelsOfTheWrongSizeNameThePixelColumnAndRow()
    {
        var ml = new MLContext();
        // The processor's class defaults make 224×224 inputs; the tiny model takes 32×32.
        var data = PipelineData.Paths(ml, [Fixtures.Preproc("camera.png")]);
        var e = ScoreAll(ml, Classify(ml, processorConfig: null), data);
        Assert.Equal(("PixelValues", 0L), (e.ColumnName, e.Row));
        Assert.Contains("holds 150528 pixel values, but the model takes [3, 32, 32] = 3072", e.Message);

        // A known-size column is refused at Fit, before any row is read.
        var fixedSize = ml.Data.LoadFromEnumerable([new FixedPixels()]);
        var fit = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")).Fit(fixedSize));
        Assert.Contains("column 'PixelValues' holds 48 values per row, but the model takes 3072", fit.Message);
    }

    [Fact]
    public void ColumnsOfTheWrongTypeAreRefusedAtFit()
    {
        var ml = new MLContext();
        var pixels = ml.Data.LoadFromEnumerable([new PixelRow { PixelValues = new float[3072] }]);
        var load = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.LoadBeitImages(inputColumnName: "PixelValues").Fit(pixels));
        Assert.Contains("LoadBeitImages: column 'PixelValues' is Vector<Single>; a text column of image paths or a vector of encoded image bytes expected", load.Message);
        var missing = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.BeitImageProcessor().Fit(pixels));
        Assert.Contains("BeitImageProcessor: the input has no column 'Image'", missing.Message);
        var paths = PipelineData.Paths(ml, [Fixtures.Preproc("camera.png")]);
        var classifier = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos"), "ImagePath").Fit(paths));
        Assert.Contains("BeitClassifier: column 'ImagePath' is String; a float vector of pixel values", classifier.Message);
    }

    [Fact]
    public void NotADecodedImageIsRefusedPerRow()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable([new ImageBytesRow { ImageBytes = File.ReadAllBytes(Fixtures.Preproc("camera.png")) }]);
        // Encoded PNG bytes fed straight to the processor, skipping LoadBeitImages.
        using var processor = ml.Transforms.BeitImageProcessor(null, "PixelValues", "ImageBytes").Fit(data);
        var e = Assert.Throws<BeitInputException>(() => PipelineData.Floats(processor.Transform(data), "PixelValues"));
        output.WriteLine(e.Message);
        Assert.Equal(("ImageBytes", 0L), (e.ColumnName, e.Row));
        Assert.Contains("are not a decoded image (expected the output of LoadBeitImages", e.Message);
    }

    [Fact]
    public void WrongModelForTheTaskNamesTheModelAndWhatIsNeeded()
    {
        var ml = new MLContext();
        var segmentation = Assert.Throws<ArgumentException>(() => ml.Transforms.BeitClassifier(Fixtures.Tiny("seg_uper")));
        output.WriteLine(segmentation.Message);
        Assert.Contains($"BeitClassifier: '{Fixtures.Tiny("seg_uper")}' is a BeitForSemanticSegmentation checkpoint; it needs an image-classification model (BeitForImageClassification)", segmentation.Message);

        var mim = Assert.Throws<ArgumentException>(() => ml.Transforms.BeitSegmenter(Fixtures.Tiny("mim_shared")));
        Assert.Contains("is a BeitForMaskedImageModeling checkpoint; it needs a semantic-segmentation model", mim.Message);

        var classification = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.ImageClassification);
        var notFeatures = Assert.Throws<ArgumentException>(() =>
            ml.Transforms.BeitFeaturizer(new BeitFeaturizerEstimator.Options { Model = BeitModelSource.FromOnnx(classification, name: "cls.onnx") }));
        Assert.Contains("BeitFeaturizer: 'cls.onnx' is a BEiT ImageClassification export; it needs a feature extractor", notFeatures.Message);

        // An ONNX export of another task says which task it is.
        var features = BeitOnnxExporter.ExportToBytes(Fixtures.Tiny("cls_relpos"), BeitOnnxTask.Features);
        var wrongOnnx = Assert.Throws<ArgumentException>(() =>
            ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = BeitModelSource.FromOnnx(features, name: "features.onnx") }));
        Assert.Contains("BeitClassifier: 'features.onnx' is a BEiT Features export; it needs an image-classification model", wrongOnnx.Message);

        var notOnnx = Assert.Throws<InvalidDataException>(() =>
            ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = BeitModelSource.FromOnnx([1, 2, 3, 4, 5], name: "junk.onnx") }));
        Assert.Contains("'junk.onnx' is not an ONNX model", notOnnx.Message);

        var nothing = Assert.Throws<FileNotFoundException>(() => ml.Transforms.BeitClassifier(Path.Combine(Fixtures.Root, "no-such-model")));
        Assert.Contains("does not exist (expected a Hugging Face checkpoint folder or an .onnx file)", nothing.Message);
    }

    [Fact]
    public void LoadedChainStillNamesColumnAndSource()
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        var data = PipelineData.Paths(ml, [Fixtures.Preproc("camera.png")]);
        string zip = Path.Combine(dir, "model.zip");
        using (var model = Classify(ml).Fit(data)) ml.Model.Save(model, data.Schema, zip);
        var loaded = ml.Model.Load(zip, out _);
        string missing = Path.Combine(dir, "gone.jpg");
        // The raw loaded chain has no typed transformer to count rows (and ML.NET's parallel cursors wrap the
        // error): the column and the path still identify the input.
        var thrown = Assert.ThrowsAny<Exception>(() => PipelineData.Floats(loaded.Transform(PipelineData.Paths(ml, [missing])), "Score"));
        var e = Assert.IsType<BeitInputException>(thrown as BeitInputException ?? thrown.InnerException);
        Assert.Equal(("ImagePath", (long?)null, missing), (e.ColumnName, e.Row, e.SourceName));
        // The typed view adds the row back.
        using var typed = LoadBeitImagesTransformer.FromLoaded(loaded);
        var withRow = Assert.Throws<BeitInputException>(() => PipelineData.Bytes(typed.Transform(PipelineData.Paths(ml, [Fixtures.Preproc("camera.png"), missing])), "Image"));
        Assert.Equal(1, withRow.Row);
        (loaded as IDisposable)?.Dispose();
    }

    private sealed class FixedPixels
    {
        [Microsoft.ML.Data.VectorType(48)]
        public float[] PixelValues { get; set; } = new float[48];
    }
}
