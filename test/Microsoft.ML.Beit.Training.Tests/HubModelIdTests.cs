using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;

namespace Beit.Tests;

/// <summary>
/// The TorchSharp models and the trainers take a Hub model id: here one in a cache laid out as Python writes it, read
/// with <c>HF_HUB_OFFLINE=1</c> (this assembly runs its tests one at a time, so setting the environment is safe).
/// </summary>
public sealed class HubModelIdTests
{
    private const string Id = "microsoft/beit-base-patch16-224";

    private static void WithHubCache(Action body)
    {
        using var cache = new TempDir();
        string tiny = Fixtures.Tiny("cls_relpos");
        HubCacheLayout.Write(cache, Id, [("config.json", Path.Combine(tiny, "config.json")), ("model.safetensors", Path.Combine(tiny, "model.safetensors"))]);
        using var env = new EnvironmentScope(new Dictionary<string, string?>
        {
            ["HF_HUB_CACHE"] = cache, ["HF_HUB_OFFLINE"] = "1", ["HF_ENDPOINT"] = "http://127.0.0.1:9", ["HF_TOKEN"] = null,
        });
        body();
    }

    [Fact]
    public void FromPretrained_TakesAModelId() => WithHubCache(() =>
    {
        using var fromId = BeitForImageClassification.FromPretrained(Id);
        using var fromFolder = BeitForImageClassification.FromPretrained(Fixtures.Tiny("cls_relpos"));
        var a = fromId.ToTensorData();
        var b = fromFolder.ToTensorData();
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        Assert.All(b, kv => Assert.Equal(kv.Value.Data, a[kv.Key].Data));
    });

    [Fact]
    public void TheTrainersCheckpointFolder_TakesAModelId() => WithHubCache(() =>
    {
        var io = SafeTensors.Read(Path.Combine(Fixtures.Train("cls_relpos_adamw"), "io.safetensors"));
        var config = BeitConfig.Load(Id);
        var data = BeitTrainingImages.FromNormalizedPixels(io["pixel_values"].ToFloatArray(),
            io["labels"].ToInt64Array().Select(l => (int)l).ToArray(), 32, 32, config.Id2Label.Values.ToList());
        List<double> Losses(string checkpoint)
        {
            var losses = new List<double>();
            new BeitImageClassificationTrainer(new()
            {
                CheckpointFolder = checkpoint, Epochs = 2, BatchSize = 4, Augment = false, ValidationFraction = 0, Seed = 0,
                EpochCallback = m => losses.Add(m.TrainLoss),
            }).Train(data).Model.Dispose();
            return losses;
        }
        Assert.Equal(Losses(Fixtures.Tiny("cls_relpos")), Losses(Id));
    });
}
