using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Data;

namespace Beit.Tests.Estimators;

/// <summary>
/// <see cref="BeitPipelines"/> builds the same pipeline the stages give by hand, saves it atomically, and the saved
/// model reloads and scores identically.
/// </summary>
public sealed class BeitPipelinesTests
{
    private static readonly string[] Images = [Fixtures.Preproc("chelsea.png"), Fixtures.Preproc("camera.png")];

    [Fact]
    public void PackagedClassifierReloadsAndScoresAsTheHandBuiltPipeline()
    {
        var ml = new MLContext(seed: 1);
        var data = PipelineData.Paths(ml, Images);
        string checkpoint = Fixtures.Tiny("cls_relpos");
        List<float[]> expected;
        using (var byHand = ml.Transforms.LoadBeitImages()
                   .Append(ml.Transforms.BeitImageProcessor(checkpoint))
                   .Append(ml.Transforms.BeitClassifier(checkpoint)).Fit(data))
            expected = PipelineData.Vectors<float>(byHand.Transform(data), "Score");

        using var dir = new TempDir();
        string zip = dir.Combine("model.zip");
        BeitPipelines.Package(ml, checkpoint, BeitOnnxTask.ImageClassification, zip);
        Assert.Equal(["model.zip"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));

        var loaded = BeitModelZip.Load(ml, zip, out var schema);
        using (loaded as IDisposable)
        {
            Assert.Equal([BeitPipelines.ImagePathColumn], schema.Select(c => c.Name));
            var scored = loaded.Transform(data);
            var actual = PipelineData.Vectors<float>(scored, "Score");
            Assert.Equal(expected.Count, actual.Count);
            for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i]);
            Assert.Equal(2, scored.GetColumn<uint>("PredictedLabel").Count());
            Assert.NotEmpty(BeitClassifierTransformer.FromLoaded(loaded).LabelNames);
        }
    }

    [Fact]
    public void BytesInputScoresAsPaths()
    {
        var ml = new MLContext(seed: 1);
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var options = new BeitPipelines.Options { Input = BeitPipelines.ImageInput.Bytes, InputColumnName = "Encoded" };
        using var fromBytes = BeitPipelines.Fit(ml, checkpoint, BeitOnnxTask.Features, options);
        using var fromPaths = BeitPipelines.Fit(ml, checkpoint, BeitOnnxTask.Features);
        Assert.IsType<BeitFeaturizerTransformer>(fromBytes.LastTransformer);

        var bytesSchema = SchemaDefinition.Create(typeof(BytesRow));
        bytesSchema[0].ColumnName = "Encoded";
        var bytes = ml.Data.LoadFromEnumerable(Images.Select(p => new BytesRow { Data = File.ReadAllBytes(p) }).ToArray(), bytesSchema);
        var a = PipelineData.Vectors<float>(fromBytes.Transform(bytes), "Features");
        var b = PipelineData.Vectors<float>(fromPaths.Transform(PipelineData.Paths(ml, Images)), "Features");
        Assert.Equal(2, a.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(b[i], a[i]);
    }

    [Fact]
    public void SegmentationPipelineGivesMapsAtEachImagesSize()
    {
        var ml = new MLContext(seed: 1);
        using var model = BeitPipelines.Fit(ml, Fixtures.Tiny("seg_uper"), BeitOnnxTask.SemanticSegmentation);
        var scored = model.Transform(PipelineData.Paths(ml, Images));
        var sizes = PipelineData.Vectors<int>(scored, "PredictedLabelSize");
        var maps = PipelineData.Vectors<int>(scored, "PredictedLabel");
        for (int i = 0; i < Images.Length; i++)
        {
            var info = Microsoft.ML.Beit.Processing.ImageDecoder.Decode(Images[i]);
            Assert.Equal([info.Height, info.Width], sizes[i]);
            Assert.Equal(info.Height * info.Width, maps[i].Length);
        }
    }

    [Fact]
    public void AnInMemoryModelGetsTheClassDefaultsAtItsImageSize()
    {
        var ml = new MLContext(seed: 1);
        string checkpoint = Fixtures.Tiny("cls_relpos");
        var config = BeitConfig.Load(checkpoint);
        var source = BeitModelSource.FromTensors(config, BeitCheckpoint.ReadTensors(checkpoint), "tensors");
        using var fromTensors = BeitPipelines.Fit(ml, source, BeitOnnxTask.ImageClassification);
        using var fromFolder = BeitPipelines.Fit(ml, checkpoint, BeitOnnxTask.ImageClassification);
        var data = PipelineData.Paths(ml, Images);
        var a = PipelineData.Vectors<float>(fromTensors.Transform(data), "Score");
        var b = PipelineData.Vectors<float>(fromFolder.Transform(data), "Score");
        for (int i = 0; i < a.Count; i++) Assert.Equal(b[i], a[i]);
    }

    [Fact]
    public void RefusesWhatItCannotBuild()
    {
        var ml = new MLContext(seed: 1);
        Assert.Throws<NotSupportedException>(() => BeitPipelines.CreateEstimator(ml, Fixtures.Tiny("mim_shared"), BeitOnnxTask.MaskedImageModeling));
        var onnx = BeitModelSource.FromOnnx([1, 2, 3], name: "bare.onnx");
        var e = Assert.Throws<ArgumentException>(() => BeitPipelines.CreateEstimator(ml, onnx, BeitOnnxTask.ImageClassification));
        Assert.Contains("Options.Processor", e.Message);
    }

    [Fact]
    public void FailedSaveKeepsThePreviousFileAndLeavesNothingBehind()
    {
        var ml = new MLContext(seed: 1);
        using var dir = new TempDir();
        string zip = dir.Combine("model.zip");
        File.WriteAllText(zip, "previous");
        var input = BeitPipelines.EmptyInput(ml);
        var e = Assert.Throws<IOException>(() => BeitPipelines.Save(ml, new FailingTransformer(), input.Schema, zip));
        Assert.Equal(FailingTransformer.Message, e.Message);
        Assert.Equal("previous", File.ReadAllText(zip));
        Assert.Equal(["model.zip"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));

        // A model that cannot be built fails before anything is written.
        string other = dir.Combine("other.zip");
        Assert.ThrowsAny<Exception>(() => BeitPipelines.Package(ml, Fixtures.Tiny("seg_uper"), BeitOnnxTask.ImageClassification, other));
        Assert.Equal(["model.zip"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    private sealed class BytesRow
    {
        [VectorType]
        public byte[] Data { get; set; } = [];
    }

    /// <summary>Fails while ML.NET is writing the zip (after its header), as a full disk would.</summary>
    private sealed class FailingTransformer : ITransformer
    {
        public const string Message = "disk full (simulated)";

        public bool IsRowToRowMapper => true;

        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;

        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException();

        public IDataView Transform(IDataView input) => input;

        void ICanSaveModel.Save(ModelSaveContext ctx)
        {
            throw new IOException(Message);
        }
    }
}
