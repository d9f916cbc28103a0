using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

public sealed class BeitClassifierTests(ITestOutputHelper output)
{
    /// <summary>Stated tolerance for ONNX Runtime vs the Hugging Face reference (fp32, tiny model).</summary>
    private const float Tolerance = 1e-5f;

    [Fact]
    public void ScoresMatchHuggingFaceOnFixturePixels()
    {
        var ml = new MLContext(seed: 1);
        var io = PipelineData.Io("cls_relpos");
        var rows = Enumerable.Range(0, 2).Select(i => new PixelRow { PixelValues = PipelineData.Item(io["pixel_values"], i) }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var classifier = ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")).Fit(data);
        var scored = classifier.Transform(data);
        var scores = PipelineData.Floats(scored, "Score");
        var predicted = PipelineData.KeyNames(scored, "PredictedLabel");
        string[] names = ["cat", "dog", "bird", "fish", "horse"];
        Assert.Equal(names, classifier.LabelNames);
        for (int i = 0; i < 2; i++)
        {
            var expected = PipelineData.Softmax(PipelineData.Item(io["logits"], i));
            float diff = TestMath.MaxAbsDiff(scores[i], expected);
            output.WriteLine($"row {i}: Score vs softmax(HF logits) max abs diff {diff:E2}, predicted {predicted[i]}");
            Assert.True(diff <= Tolerance, $"row {i}: {diff}");
            Assert.Equal(names[Array.IndexOf(expected, expected.Max())], predicted[i]);
        }
    }

    [Fact]
    public void FullPipelineFromImageFiles()
    {
        var ml = new MLContext(seed: 1);
        var data = PipelineData.Paths(ml, PipelineData.PhotoPaths());
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var pipeline = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(checkpoint))
            .Append(ml.Transforms.BeitClassifier(checkpoint));
        using var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var scores = PipelineData.Floats(scored, "Score");
        var predicted = PipelineData.KeyNames(scored, "PredictedLabel");
        Assert.Equal(4, scores.Count);
        foreach (var (s, p) in scores.Zip(predicted))
        {
            output.WriteLine($"{p}: [{string.Join(", ", s.Select(v => v.ToString("F4")))}]");
            Assert.Equal(5, s.Length);
            Assert.InRange(s.Sum(), 0.9999f, 1.0001f);
        }
    }

    private static IDataView FixturePixels(MLContext ml)
    {
        var io = PipelineData.Io("cls_relpos");
        return ml.Data.LoadFromEnumerable(Enumerable.Range(0, 2).Select(i => new PixelRow { PixelValues = PipelineData.Item(io["pixel_values"], i) }).ToArray());
    }

    private static List<float[]> Scores(MLContext ml, BeitClassifierEstimator.Options options)
    {
        var data = FixturePixels(ml);
        using var classifier = ml.Transforms.BeitClassifier(options).Fit(data);
        return PipelineData.Floats(classifier.Transform(data), "Score");
    }

    [Fact]
    public void EveryModelSourceGivesTheSameScores()
    {
        var ml = new MLContext();
        string folder = Fixtures.Tiny("cls_relpos");
        var reference = Scores(ml, new() { Model = folder });
        var (config, tensors) = BeitCheckpoint.Load(folder);

        // A model our trainers produce: configuration + tensors in memory; and our own export as bytes and as a file.
        Assert.Equal(reference, Scores(ml, new() { Model = BeitModelSource.FromTensors(config, tensors) }));
        var onnx = BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification);
        Assert.Equal(reference, Scores(ml, new() { Model = BeitModelSource.FromOnnx(onnx) }));
        using var dir = new TempDir();
        string file = Path.Combine(dir, "cls.onnx");
        File.WriteAllBytes(file, onnx);
        Assert.Equal(reference, Scores(ml, new() { Model = file }));

        // The standard-operator export and PyTorch's own export (logits only, no configuration inside).
        var standard = Scores(ml, new() { Model = folder, ExportOptions = new BeitOnnxExportOptions { OperatorSet = BeitOnnxOperatorSet.Standard } });
        var torch = Scores(ml, new() { Model = BeitModelSource.FromOnnxFile(Path.Combine(folder, "model.onnx"), config) });
        for (int i = 0; i < 2; i++)
        {
            float s = TestMath.MaxAbsDiff(standard[i], reference[i]), t = TestMath.MaxAbsDiff(torch[i], reference[i]);
            output.WriteLine($"row {i}: standard operators {s:E2}, torch.onnx.export graph {t:E2} (max abs diff of Score)");
            Assert.True(s <= Tolerance && t <= Tolerance);
        }
    }

    [Fact]
    public void ForeignOnnxWithoutConfigurationTakesLabelNamesFromOptions()
    {
        var ml = new MLContext();
        string onnx = Path.Combine(Fixtures.Tiny("cls_relpos"), "model.onnx");
        var data = FixturePixels(ml);
        var unnamed = ml.Transforms.BeitClassifier(onnx);
        Assert.Equal(["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3", "LABEL_4"], unnamed.LabelNames);
        using var named = ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = onnx, LabelNames = ["a", "b", "a", "c", "a"], LogitsColumnName = "Logits" }).Fit(data);
        // Duplicate names get their class index, so keys stay one per class.
        Assert.Equal(["a (0)", "b", "a (2)", "c", "a (4)"], named.LabelNames);
        var scored = named.Transform(data);
        var io = PipelineData.Io("cls_relpos");
        for (int i = 0; i < 2; i++)
        {
            float diff = TestMath.MaxAbsDiff(PipelineData.Floats(scored, "Logits")[i], PipelineData.Item(io["logits"], i));
            output.WriteLine($"row {i}: Logits vs HF logits {diff:E2}");
            Assert.True(diff <= Tolerance);
        }
        Assert.Throws<ArgumentException>(() => ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = onnx, LabelNames = ["x"] }));
    }

    [Fact]
    public void AnyLabelNameSurvivesTheZipAndATransformerSavedAlone()
    {
        var ml = new MLContext();
        string[] names = ["say \"cheese\"", @"back\slash", "café, crème", "日本", "line\nbreak"];
        var data = FixturePixels(ml);
        using var dir = new TempDir();
        string zip = Path.Combine(dir, "classifier.zip");
        List<float[]> expected;
        // A stage saved on its own (not in a chain) loads as the chain it is made of.
        using (var classifier = ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options
               { Model = Path.Combine(Fixtures.Tiny("cls_relpos"), "model.onnx"), LabelNames = names }).Fit(data))
        {
            ml.Model.Save(classifier, data.Schema, zip);
            expected = PipelineData.Floats(classifier.Transform(data), "Score");
        }
        var loaded = ml.Model.Load(zip, out _);
        using var typed = BeitClassifierTransformer.FromLoaded(loaded);
        Assert.Equal(names, typed.LabelNames);
        var scored = loaded.Transform(data);
        Assert.Equal(expected, PipelineData.Floats(scored, "Score"));
        Assert.All(PipelineData.KeyNames(scored, "PredictedLabel"), n => Assert.Contains(n, names));
    }

    [Fact]
    public void WorksWithMulticlassClassificationEvaluate()
    {
        var ml = new MLContext();
        var photos = PipelineData.PhotoPaths();
        string[] truth = ["cat", "dog", "dog", "horse"];
        var data = ml.Data.LoadFromEnumerable(photos.Select((p, i) => new LabelledImageRow { ImagePath = p, Label = truth[i] }).ToArray());
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var classifier = ml.Transforms.BeitClassifier(checkpoint);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classifier.LabelKeyData)
            .Append(ml.Transforms.LoadBeitImages())
            .Append(ml.Transforms.BeitImageProcessor(checkpoint))
            .Append(classifier);
        using var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        var predicted = PipelineData.KeyNames(scored, "PredictedLabel");
        var scores = PipelineData.Floats(scored, "Score");
        double accuracy = predicted.Zip(truth).Count(p => p.First == p.Second) / 4.0;
        double logLoss = truth.Select((t, i) => -Math.Log(scores[i][Array.IndexOf(classifier.LabelNames.ToArray(), t)])).Average();
        output.WriteLine($"Evaluate: micro accuracy {metrics.MicroAccuracy:F4} (expected {accuracy:F4}), log-loss {metrics.LogLoss:F4} (expected {logLoss:F4})");
        Assert.Equal(accuracy, metrics.MicroAccuracy, 12);
        Assert.Equal(logLoss, metrics.LogLoss, 5);
        Assert.Equal(5, metrics.ConfusionMatrix.NumberOfClasses);
    }

    [Fact]
    public void PredictionEngineOnLoadedModelAndDeterministicDisposal()
    {
        using var dir = new TempDir();
        string temp = Path.Combine(dir, "mlnet-temp");
        Directory.CreateDirectory(temp);
        var ml = new MLContext { TempFilePath = temp };
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var data = PipelineData.Paths(ml, PipelineData.PhotoPaths());
        string zip = Path.Combine(dir, "model.zip");
        List<float[]> expected;
        string? modelFile;
        var pipeline = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(checkpoint))
            .Append(ml.Transforms.BeitClassifier(checkpoint))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        using (var model = pipeline.Fit(data))
        {
            ml.Model.Save(model, data.Schema, zip);
            expected = PipelineData.Floats(model.Transform(data), "Score");
            modelFile = BeitClassifierTransformer.FromLoaded(model).ModelFilePath;
            Assert.True(File.Exists(modelFile));
        }
        Assert.False(File.Exists(modelFile), "the in-process classifier left its ONNX file behind");

        var loaded = ml.Model.Load(zip, out var schema);
        Assert.NotEmpty(Directory.GetFiles(temp));
        using (var engine = ml.Model.CreatePredictionEngine<ImagePathRow, ClassifierPrediction>(loaded, inputSchema: schema))
        {
            var photos = PipelineData.PhotoPaths();
            for (int i = 0; i < photos.Length; i++)
            {
                var prediction = engine.Predict(new ImagePathRow { ImagePath = photos[i] });
                Assert.Equal(expected[i], prediction.Score);
                Assert.Equal(BeitClassifierTransformer.FromLoaded(loaded).LabelNames[Array.IndexOf(prediction.Score, prediction.Score.Max())], prediction.PredictedLabel);
            }
        }
        ((IDisposable)loaded).Dispose();
        // ML.NET wrote the embedded ONNX model to its temp folder at Load; disposing the model removed it.
        Assert.Empty(Directory.GetFiles(temp));
    }

    [Fact]
    public void FromLoadedGivesTheTypedStagesBack()
    {
        var ml = new MLContext();
        using var dir = new TempDir();
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var data = PipelineData.Paths(ml, [Fixtures.Preproc("camera.png")]);
        string zip = Path.Combine(dir, "model.zip");
        var processor = Microsoft.ML.Beit.Processing.BeitImageProcessor.FromJson("{\"size\": {\"height\": 40, \"width\": 40}, \"crop_size\": 32, \"resample\": 2, \"image_mean\": [0.485, 0.456, 0.406]}");
        using (var model = ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { DecoderOptions = new() { ApplyExifOrientation = true, MaxPixels = 1_000_000 } })
            .Append(ml.Transforms.BeitImageProcessor(new BeitImageProcessorEstimator.Options { Processor = processor }))
            .Append(ml.Transforms.BeitClassifier(checkpoint))
            .Fit(data))
        {
            ml.Model.Save(model, data.Schema, zip);
        }
        using var loaded = (TransformerChain<ITransformer>)ml.Model.Load(zip, out _);
        var load = LoadBeitImagesTransformer.FromLoaded(loaded);
        Assert.Equal(("ImagePath", "Image", true, 1_000_000L), (load.InputColumnName, load.OutputColumnName, load.DecoderOptions.ApplyExifOrientation, load.DecoderOptions.MaxPixels));
        var process = BeitImageProcessorTransformer.FromLoaded(loaded);
        Assert.Equal(processor.ToJson(), process.Processor.ToJson());
        Assert.Equal(("Image", "PixelValues"), (process.InputColumnName, process.OutputColumnName));
        var classifier = BeitClassifierTransformer.FromLoaded(loaded);
        Assert.Equal(["cat", "dog", "bird", "fish", "horse"], classifier.LabelNames);
        Assert.Equal((32, 32, "PixelValues", "PredictedLabel"), (classifier.ImageHeight, classifier.ImageWidth, classifier.InputColumnName, classifier.PredictedLabelColumnName));
        Assert.Null(classifier.ModelFilePath);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classifier.LabelKeyData)
            .Fit(ml.Data.LoadFromEnumerable([new LabelledImageRow { Label = "fish" }]));
        var key = keys.Transform(ml.Data.LoadFromEnumerable([new LabelledImageRow { Label = "fish" }]));
        Assert.Equal(["fish"], PipelineData.KeyNames(key, "Label"));
        // The typed view runs (and names rows in errors) like the in-process stage.
        Assert.Single(PipelineData.Floats(classifier.Transform(process.Transform(load.Transform(data))), "Score"));
        var missing = Assert.Throws<ArgumentException>(() => BeitSegmenterTransformer.FromLoaded(loaded));
        Assert.Contains("holds no BeitSegmenterTransformer stage", missing.Message);
    }
}
