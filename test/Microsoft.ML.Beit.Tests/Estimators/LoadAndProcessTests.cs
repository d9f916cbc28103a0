using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;

namespace Beit.Tests.Estimators;

public sealed class LoadAndProcessTests
{
    [Fact]
    public void LoadBeitImagesDecodesPathsAndBytesLikeImageDecoder()
    {
        var ml = new MLContext();
        var paths = PipelineData.PhotoPaths().Append(Fixtures.Preproc("rgba_small.png")).ToArray();
        var fromPaths = ml.Transforms.LoadBeitImages().Fit(PipelineData.Paths(ml, paths));
        var images = PipelineData.Bytes(fromPaths.Transform(PipelineData.Paths(ml, paths)), "Image");

        var bytesData = ml.Data.LoadFromEnumerable(paths.Select(p => new ImageBytesRow { ImageBytes = File.ReadAllBytes(p) }).ToArray());
        var fromBytes = ml.Transforms.LoadBeitImages("Decoded", "ImageBytes").Fit(bytesData);
        var decoded = PipelineData.Bytes(fromBytes.Transform(bytesData), "Decoded");

        for (int i = 0; i < paths.Length; i++)
        {
            var expected = BeitImageColumn.Encode(ImageDecoder.Decode(paths[i]));
            Assert.Equal(expected, images[i]);
            Assert.Equal(expected, decoded[i]);
            var image = BeitImageColumn.Decode(images[i]);
            Assert.True(BeitImageColumn.TryGetSize(images[i], out var size));
            Assert.Equal(image.Size, size);
        }
        Assert.Equal("ImagePath", fromPaths.InputColumnName);
        Assert.Equal("Image", fromPaths.OutputColumnName);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("cls_relpos")]
    public void ProcessorStageIsBitIdenticalToBeitImageProcessor(string? checkpoint)
    {
        var ml = new MLContext();
        var data = PipelineData.Paths(ml, PipelineData.PhotoPaths());
        string? folder = checkpoint == null ? null : Fixtures.Tiny(checkpoint);
        var model = ml.Transforms.LoadBeitImages().Append(ml.Transforms.BeitImageProcessor(folder)).Fit(data);
        var pixels = PipelineData.Floats(model.Transform(data), "PixelValues");
        var processor = folder == null ? new BeitImageProcessor() : BeitImageProcessorEstimator.LoadProcessor(folder);
        var photos = PipelineData.PhotoPaths();
        for (int i = 0; i < photos.Length; i++)
            Assert.True(processor.Preprocess(ImageDecoder.Decode(photos[i])).AsSpan().SequenceEqual(pixels[i]), photos[i]);
        Assert.Equal(folder == null ? 3 * 224 * 224 : 3 * 32 * 32, pixels[0].Length);
    }

    [Fact]
    public void LoadProcessorReadsPreprocessorConfigOrDerivesItFromTheModel()
    {
        // A folder without preprocessor_config.json: transformers v5's defaults at the model's image_size.
        var derived = BeitImageProcessorEstimator.LoadProcessor(Fixtures.Tiny("seg_uper"));
        Assert.Equal(ResizeSize.Exact(64, 64), derived.Size);
        Assert.False(derived.DoCenterCrop);
        Assert.Equal(PillowResample.Bicubic, derived.Resample);

        using var dir = new TempDir();
        var custom = new BeitImageProcessor { Size = ResizeSize.Exact(40, 40), CropSize = new PixelSize(32, 32), Resample = PillowResample.Bilinear };
        File.WriteAllText(Path.Combine(dir, BeitImageProcessor.ConfigFileName), custom.ToJson());
        var read = BeitImageProcessorEstimator.LoadProcessor(dir);
        Assert.Equal(custom.ToJson(), read.ToJson());
        Assert.Equal(custom.ToJson(), BeitImageProcessorEstimator.LoadProcessor(Path.Combine(dir, BeitImageProcessor.ConfigFileName)).ToJson());
        Assert.Throws<FileNotFoundException>(() => BeitImageProcessorEstimator.LoadProcessor(Path.Combine(dir, "missing")));
    }

    [Fact]
    public void PipelineOutputSchemaPropagatesThroughEstimators()
    {
        var ml = new MLContext();
        var input = ml.Transforms.CustomMapping<EmptyRow, ImagePathRow>((_, _) => { }, contractName: null).GetOutputSchema(new SchemaShape([]));
        var shape = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")))
            .GetOutputSchema(input);
        var byName = shape.ToDictionary(c => c.Name);
        Assert.Equal(["Image", "ImagePath", "PixelValues", "PredictedLabel", "Score"], shape.Select(c => c.Name).Order());
        Assert.Equal(SchemaShape.Column.VectorKind.Vector, byName["Score"].Kind);
        Assert.Equal(NumberDataViewType.Single, byName["Score"].ItemType);
        Assert.True(byName["PredictedLabel"].IsKey);
        Assert.Contains(byName["PredictedLabel"].Annotations, a => a.Name == "KeyValues");
        Assert.Equal(SchemaShape.Column.VectorKind.VariableVector, byName["PixelValues"].Kind);
        Assert.Equal(NumberDataViewType.Byte, byName["Image"].ItemType);
    }

    public sealed class EmptyRow
    {
    }
}

/// <summary>Tests that read a process-wide counter run alone, after the parallel ones, so no other test moves it.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideCounterCollection
{
    public const string Name = "Process-wide counters";
}

/// <summary>The per-row cache of stage configurations, measured with the process-wide parse counter.</summary>
[Collection(ProcessWideCounterCollection.Name)]
public sealed class StageConfigCacheTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void StageConfigurationIsParsedOncePerStageNotPerRow()
    {
        var ml = new MLContext();
        var paths = Enumerable.Repeat(Fixtures.Preproc("rgba_small.png"), 60).ToArray();
        var data = PipelineData.Paths(ml, paths);
        using var model = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")))
            .Fit(data);
        var scored = model.Transform(data);
        long before = Interlocked.Read(ref BeitStageConfig.ParseCount);
        Assert.Equal(60, PipelineData.Floats(scored, "Score").Count);
        long parses = Interlocked.Read(ref BeitStageConfig.ParseCount) - before;
        // 3 stages × 60 rows would be 180 parses without the cache: each stage's config string is parsed at most once,
        // by the cursor that first reads it (3 when this test runs alone; 0 when an earlier test already parsed the same
        // string instances, as the cache is process-wide).
        output.WriteLine($"{parses} configuration parses for 60 rows");
        Assert.InRange(parses, 0, 3);
    }
}
