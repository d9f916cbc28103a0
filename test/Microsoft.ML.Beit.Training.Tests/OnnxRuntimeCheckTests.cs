using Microsoft.ML;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;

namespace Beit.Tests;

/// <summary>Training ends in an ONNX Runtime session: without the native runtime it fails before the first epoch.</summary>
public sealed class OnnxRuntimeCheckTests
{
    [Fact]
    public void TrainingFailsBeforeTheFirstEpochWithoutTheNativeRuntime()
    {
        int epochs = 0;
        var options = new BeitImageClassificationTrainer.Options
        {
            Config = BeitImageClassificationTrainerTests.TinyConfig(), Epochs = 1, BatchSize = 8, Augment = false, ValidationFraction = 0,
            EpochCallback = _ => epochs++,
        };
        var images = BeitImageClassificationTrainerTests.PatternImages(16, 5);
        using var dir = new TempDir();
        string zip = Path.Combine(dir, "model.zip");
        BeitOnnxRuntime.ProbeOverride = () => false;
        try
        {
            var builder = Assert.Throws<BeitOnnxRuntimeMissingException>(() => BeitModelBuilder.Train(new MLContext(seed: 0), images, images, zip, options));
            Assert.Contains("dotnet add package Microsoft.ML.OnnxRuntime", builder.Message);
            var ml = new MLContext();
            var catalog = Assert.Throws<BeitOnnxRuntimeMissingException>(() => ml.BeitTrainers().ImageClassification(options));
            Assert.Equal("BeitTrainers.ImageClassification", catalog.EntryPoint);
            var fit = Assert.Throws<BeitOnnxRuntimeMissingException>(() => new BeitImageClassificationTrainer(ml, options).Fit(ml.Data.LoadFromEnumerable(Array.Empty<object>())));
            Assert.Equal(nameof(BeitImageClassificationTrainer), fit.EntryPoint);
        }
        finally
        {
            BeitOnnxRuntime.ProbeOverride = null;
        }
        Assert.Equal(0, epochs);
        Assert.False(File.Exists(zip));
    }
}
