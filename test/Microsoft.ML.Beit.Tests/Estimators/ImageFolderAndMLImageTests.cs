using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Data;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary>What ML.NET users already have: LoadImages' imageFolder convention, and MLImage columns as processor input.</summary>
public sealed class ImageFolderAndMLImageTests(ITestOutputHelper output)
{
    [Fact]
    public void ImageFolderResolvesRelativePathsAndRefusesPathsOutsideIt()
    {
        using var dir = new TempDir();
        string folder = dir.Combine("images");
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        File.Copy(Fixtures.Preproc("coffee.png"), Path.Combine(folder, "sub", "coffee.png"));
        // A readable image right outside the folder: reaching it must fail on the path, not succeed by reading it.
        File.Copy(Fixtures.Preproc("chelsea.png"), dir.Combine("outside.png"));

        var ml = new MLContext();
        string[] paths = ["sub/coffee.png", "sub/../sub/coffee.png", "../outside.png", dir.Combine("outside.png"), "sub/missing.png"];
        var data = PipelineData.Paths(ml, paths);
        var model = ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { ImageFolder = folder, ErrorColumnName = "Error" }).Fit(data);
        var scored = model.Transform(data);
        var images = PipelineData.Bytes(scored, "Image");
        var errors = PipelineData.Strings(scored, "Error");

        var expected = BeitImageColumn.Encode(Microsoft.ML.Beit.Processing.ImageDecoder.Decode(Fixtures.Preproc("coffee.png")));
        Assert.Equal(expected, images[0]);
        Assert.Equal(expected, images[1]);
        Assert.Equal(["", ""], errors.Take(2));
        Assert.Contains("outside the image folder", errors[2]);
        Assert.Contains("absolute", errors[3]);
        Assert.Contains("does not exist", errors[4]);
        foreach (int bad in new[] { 2, 3, 4 }) Assert.True(BeitImageColumn.IsMissing(images[bad]));
        Assert.Equal(folder, model.ImageFolder);

        // Without an error column the same row throws, naming the column and the path.
        var strict = ml.Transforms.LoadBeitImages("Image", folder, "ImagePath").Fit(data);
        var e = Assert.ThrowsAny<Exception>(() => PipelineData.Bytes(strict.Transform(PipelineData.Paths(ml, ["../outside.png"])), "Image"));
        var input = Assert.IsType<BeitInputException>(Unwrap(e));
        Assert.Equal("../outside.png", input.SourceName);
        Assert.Contains("outside the image folder", input.Message);

        // The folder is saved with the model.
        string zip = dir.Combine("load.zip");
        ml.Model.Save(strict, data.Schema, zip);
        var loaded = ml.Model.Load(zip, out _);
        Assert.Equal(folder, LoadBeitImagesTransformer.FromLoaded(loaded).ImageFolder);
        Assert.Equal(expected, PipelineData.Bytes(loaded.Transform(PipelineData.Paths(ml, ["sub/coffee.png"])), "Image")[0]);
    }

    [Fact]
    public void ImageFolderIsForPathsOnly()
    {
        var ml = new MLContext();
        var bytes = ml.Data.LoadFromEnumerable(new[] { new ImageBytesRow { ImageBytes = File.ReadAllBytes(Fixtures.Preproc("coffee.png")) } });
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { InputColumnName = "ImageBytes", ImageFolder = "." }).Fit(bytes));
        Assert.Throws<ArgumentException>(() => ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { ImageFolder = "" }));
    }

    [Fact]
    public void MLImageFromLoadImagesGivesTheSamePixelValuesForOpaqueImages()
    {
        var ml = new MLContext();
        string folder = Path.GetDirectoryName(Fixtures.Preproc("coffee.png"))!;
        var data = PipelineData.Paths(ml, PipelineData.Photos);
        string checkpoint = Fixtures.Tiny("cls_relpos");

        var ours = ml.Transforms.LoadBeitImages("Image", folder, "ImagePath")
            .Append(ml.Transforms.BeitImageProcessor(checkpoint)).Fit(data);
        using var mlnet = ml.Transforms.LoadImages("MLImage", folder, "ImagePath")
            .Append(ml.Transforms.BeitImageProcessor(checkpoint, inputColumnName: "MLImage")).Fit(data);

        var expected = PipelineData.Floats(ours.Transform(data), "PixelValues");
        var actual = PipelineData.Floats(mlnet.Transform(data), "PixelValues");
        // Opaque PNGs (colour and grey): SkiaSharp and our decoder give the same bytes, so the tensors are bit-exact.
        for (int i = 0; i < expected.Count; i++) Assert.True(expected[i].AsSpan().SequenceEqual(actual[i]), PipelineData.Photos[i]);

        // The chain saves and loads like every other stage.
        using var dir = new TempDir();
        string zip = dir.Combine("mlimage.zip");
        ml.Model.Save(mlnet, data.Schema, zip);
        var loaded = ml.Model.Load(zip, out _);
        Assert.Equal("MLImage", BeitImageProcessorTransformer.FromLoaded(loaded).InputColumnName);
        Assert.Equal(expected[0], PipelineData.Floats(loaded.Transform(data), "PixelValues")[0]);
    }

    [Fact]
    public void MLImageOfATranslucentImageIsPremultiplied()
    {
        // The documented caveat: SkiaSharp keeps premultiplied alpha, Pillow's convert("RGB") drops alpha unmultiplied.
        var ml = new MLContext();
        string file = Fixtures.Preproc("rgba_small.png");
        var data = PipelineData.Paths(ml, [Path.GetFileName(file)]);
        string folder = Path.GetDirectoryName(file)!;
        var ours = PipelineData.Floats(ml.Transforms.LoadBeitImages("Image", folder, "ImagePath")
            .Append(ml.Transforms.BeitImageProcessor()).Fit(data).Transform(data), "PixelValues")[0];
        var mlnet = PipelineData.Floats(ml.Transforms.LoadImages("MLImage", folder, "ImagePath")
            .Append(ml.Transforms.BeitImageProcessor(inputColumnName: "MLImage")).Fit(data).Transform(data), "PixelValues")[0];
        double diff = TestMath.MaxAbsDiff(ours, mlnet);
        output.WriteLine($"rgba_small.png: max abs diff {diff:G4} between LoadBeitImages and LoadImages (MLImage)");
        Assert.True(diff > 0.01, "a translucent fixture should show the premultiplied-alpha difference");
    }

    [Fact]
    public void ProcessorRefusesOtherColumnTypes()
    {
        var ml = new MLContext();
        var data = PipelineData.Paths(ml, ["x.png"]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.BeitImageProcessor(inputColumnName: "ImagePath").Fit(data));
        Assert.Contains("MLImage", e.Message);
    }

    [Fact]
    public void EveryInternalColumnAMappingWritesIsInTheTable()
    {
        var names = typeof(BeitColumns).Assembly.GetTypes()
            .SelectMany(t => t.GetProperties())
            .SelectMany(p => p.GetCustomAttributesData())
            .Where(a => a.AttributeType == typeof(ColumnNameAttribute))
            .Select(a => a.ConstructorArguments[0].Value as string)
            .Where(n => n != null && n.StartsWith("__beit_", StringComparison.Ordinal))
            .Distinct().ToList();
        Assert.NotEmpty(names);
        foreach (var n in names) Assert.Contains(n, BeitColumns.All);
        Assert.Equal(BeitColumns.All.Length, BeitColumns.Table.Count);
        Assert.Equal(BeitColumns.All.Length, BeitColumns.All.Distinct().Count());
    }

    private static Exception Unwrap(Exception e)
    {
        while (e is not BeitInputException && e.InnerException != null) e = e.InnerException;
        return e;
    }
}
