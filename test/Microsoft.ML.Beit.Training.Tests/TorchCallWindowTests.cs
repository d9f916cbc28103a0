using System.Runtime;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.ImageClassification;

namespace Beit.Tests;

public class TorchCallWindowTests
{
    [Fact]
    public void NoCollectionRunsInsideAWindowAndNestedWindowsDoNothing()
    {
        int before = GC.CollectionCount(0);
        using (var window = TorchCallWindow.Open())
        {
            Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            int opened = GC.CollectionCount(0); // opening may collect once, to make room
            using (TorchCallWindow.Open()) { } // nested: must not end the outer window
            Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            for (int i = 0; i < 10_000; i++) GC.KeepAlive(new byte[256]); // 2.6 MB, well inside the reservation
            Assert.Equal(opened, GC.CollectionCount(0));
        }
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        Assert.True(GC.CollectionCount(0) >= before);
        // A window whose reservation ran out (an induced collection ends it) closes quietly.
        using (TorchCallWindow.Open()) GC.Collect();
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public async Task TrainingSurvivesAnotherThreadAllocatingThroughout()
    {
        // TorchSharp frees a temporary Scalar from its finalizer; a collection started by another thread while libtorch
        // used it failed batch-32 training with "Expected false to be true" (c10 Scalar::toFloat). Small batches, drop
        // path and bf16 make many Scalars; a second thread allocates the whole time, as a progress display or server does.
        using var stop = new CancellationTokenSource();
        var noise = Task.Factory.StartNew(() =>
        {
            long n = 0;
            while (!stop.IsCancellationRequested)
            {
                GC.KeepAlive(new object[32]);
                if (++n % 64 == 0) Thread.Sleep(0);
            }
        }, TaskCreationOptions.LongRunning);
        try
        {
            var result = new BeitImageClassificationTrainer(new()
            {
                Config = BeitImageClassificationTrainerTests.TinyConfig(), Epochs = 12, BatchSize = 2, LearningRate = 1e-3, DropPathRate = 0.1,
                Augment = true, Bf16Autocast = true, ValidationFraction = 0.1, Seed = 5, NumThreads = 1,
            }).Train(BeitImageClassificationTrainerTests.PatternImages(256, 3));
            Assert.Equal(12, result.History.Count);
            result.Model.Dispose();
        }
        finally
        {
            stop.Cancel();
            await noise;
        }
    }
}
