using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.Data;

namespace Beit.Tests.Safety;

/// <summary>Disposing an engine must not break the shared model; the pool never does.</summary>
public sealed class PredictionEnginePoolTests
{
    private sealed class Input
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class Output
    {
        public float[] Score { get; set; } = [];
    }

    private static ITransformer Model(MLContext ml)
    {
        var data = PipelineData.Paths(ml, []);
        return ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")))
            .Fit(data);
    }

    [Fact]
    public void DisposingAnEngineThatDoesNotOwnTheModelLeavesTheOthersWorking()
    {
        var ml = new MLContext();
        var model = Model(ml);
        using (model as IDisposable)
        {
            var input = new Input { ImagePath = Fixtures.Preproc("camera.png") };
            var options = new PredictionEngineOptions { OwnsTransformer = false };
            using var keeper = ml.Model.CreatePredictionEngine<Input, Output>(model, options);
            var expected = keeper.Predict(input).Score;
            ml.Model.CreatePredictionEngine<Input, Output>(model, options).Dispose();
            Assert.Equal(expected, keeper.Predict(input).Score);
            Assert.Equal(expected, PipelineData.Floats(model.Transform(PipelineData.Paths(ml, [input.ImagePath])), "Score")[0]);

            // ML.NET's default (the engine owns the model) is the trap this guards against.
            ml.Model.CreatePredictionEngine<Input, Output>(model).Dispose();
            Assert.ThrowsAny<Exception>(() => keeper.Predict(input));
        }
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void APoolServes200ConcurrentRequestsWithoutErrorsAndDisposingItKeepsTheModel()
    {
        var ml = new MLContext();
        var model = Model(ml);
        using (model as IDisposable)
        {
            var photos = PipelineData.PhotoPaths();
            var expected = PipelineData.Floats(model.Transform(PipelineData.Paths(ml, photos)), "Score");
            int errors = 0, wrong = 0;
            using (var pool = new BeitPredictionEnginePool<Input, Output>(ml, model, maxRetained: 3))
            {
                Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
                {
                    try
                    {
                        var score = pool.Predict(new Input { ImagePath = photos[i % photos.Length] }).Score;
                        if (!score.SequenceEqual(expected[i % photos.Length])) Interlocked.Increment(ref wrong);
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref errors);
                    }
                });
                Assert.InRange(pool.IdleCount, 1, 3); // surplus engines were disposed: harmless
            }
            Assert.Equal(0, errors);
            Assert.Equal(0, wrong);
            Assert.Equal(expected, PipelineData.Floats(model.Transform(PipelineData.Paths(ml, photos)), "Score"));
        }
    }
}
