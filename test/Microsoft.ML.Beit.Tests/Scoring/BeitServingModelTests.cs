using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Tests.Scoring;

/// <summary><see cref="BeitServingModel"/> in process: bytes in, the saved pipeline's numbers out, bad input typed.</summary>
public sealed class BeitServingModelTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The saved classifier fed paths: the reference the served model must equal exactly.</summary>
    private static List<float[]> PathScores(string zip, string[] paths)
    {
        var ml = new MLContext();
        var model = Microsoft.ML.Beit.BeitModelZip.Load(ml, zip, out _);
        using (model as IDisposable)
            return PipelineData.Floats(model.Transform(PipelineData.Paths(ml, paths)), "Score");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task AZipServedFromBytesScoresExactlyAsThePipelineFromFiles(int maxBatch)
    {
        string zip = TestZips.TinyZip(_dir);
        var paths = PipelineData.PhotoPaths();
        var expected = PathScores(zip, paths);
        using var served = BeitServingModel.Load(zip, new BeitServingOptions { MaxBatch = maxBatch, MaxConcurrency = 2 });
        Assert.Equal(BeitScoringTask.ImageClassification, served.Task);
        Assert.Equal(5, served.Labels.Count);
        Assert.Equal(new Microsoft.ML.Beit.Processing.PixelSize(32, 32), served.InputSize);
        Assert.Equal("Float32", served.Precision);
        // 8 concurrent callers per image, more than the 2 engines: they wait, and each gets its own image's scores.
        var bytes = paths.Select(File.ReadAllBytes).ToArray();
        var results = await Task.WhenAll(Enumerable.Range(0, 8 * paths.Length).Select(i => Task.Run(() => served.ClassifyAsync(bytes[i % paths.Length]))));
        for (int i = 0; i < results.Length; i++) Assert.Equal(expected[i % paths.Length], results[i]);
    }

    [Fact]
    public async Task BadBytesAreBeitInputExceptionsAndTheWrongTaskIsRefused()
    {
        string zip = TestZips.TinyZip(_dir);
        using var served = BeitServingModel.Load(zip, new BeitServingOptions { MaxImageBytes = 100_000 });
        var notImage = await Assert.ThrowsAsync<BeitInputException>(() => served.ClassifyAsync("hello"u8.ToArray()));
        Assert.Contains("cannot decode", notImage.Problem);
        var tooLarge = await Assert.ThrowsAsync<BeitInputException>(() => served.ClassifyAsync(new byte[100_001]));
        Assert.Contains("100,000", tooLarge.Problem);
        // The decoder's file-size limit is the serving limit too: a PNG just over it is refused before decoding.
        var png = File.ReadAllBytes(Fixtures.Preproc("chelsea.png"));
        Assert.True(png.Length > 100_000);
        await Assert.ThrowsAsync<BeitInputException>(() => served.ClassifyAsync(png));
        await Assert.ThrowsAsync<InvalidOperationException>(() => served.SegmentAsync(png));
        await Assert.ThrowsAsync<InvalidOperationException>(() => served.FeaturesAsync(png));
        // Still healthy.
        Assert.Equal(5, (await served.ClassifyAsync(File.ReadAllBytes(Fixtures.Preproc("thin.png")))).Length);
    }

    [Fact]
    public async Task ACheckpointFolderServesItsTaskAndDisposeWaitsThenRefuses()
    {
        var served = BeitServingModel.Load(Fixtures.Tiny("seg_uper"));
        Assert.Equal(BeitScoringTask.SemanticSegmentation, served.Task);
        var bytes = File.ReadAllBytes(Fixtures.Preproc("seg_b.png"));
        var image = Microsoft.ML.Beit.Processing.ImageDecoder.Decode(bytes);
        var result = await served.SegmentAsync(bytes);
        Assert.Equal((image.Height, image.Width), (result.Size.Height, result.Size.Width));
        Assert.Equal(image.Height * image.Width, result.Labels.Length);
        Assert.All(result.Labels, l => Assert.InRange(l, 0, served.Labels.Count - 1));
        served.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => served.SegmentAsync(bytes));
    }

    [Fact]
    public void AFileThatIsNotAModelIsRefusedNamingIt()
    {
        string path = _dir.Combine("model.zip");
        File.WriteAllText(path, "not a zip");
        var e = Assert.Throws<InvalidDataException>(() => BeitServingModel.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Throws<FileNotFoundException>(() => BeitServingModel.Load(_dir.Combine("absent.zip")));
        Assert.Throws<ArgumentOutOfRangeException>(() => BeitServingModel.Load(path, new BeitServingOptions { MaxBatch = 0 }));
    }
}
