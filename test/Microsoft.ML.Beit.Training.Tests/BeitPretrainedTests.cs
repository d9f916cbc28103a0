using System.Text.Json.Nodes;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Training;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>FromPretrained / SavePretrained: Hugging Face names, typed load errors, bit-identical round trips.</summary>
public class BeitPretrainedTests
{
    [Theory]
    [InlineData("cls_relpos")]
    [InlineData("mim_shared")]
    [InlineData("seg_uper")]
    public void StateDictNamesAndShapesAreTheCheckpointsExactly(string name)
    {
        var checkpoint = SafeTensors.Read(Path.Combine(Fixtures.Tiny(name), SafeTensors.ModelFileName));
        using var model = Create(name, BeitConfig.Load(Fixtures.Tiny(name)));
        var stateDict = model.state_dict();
        Assert.Equal(checkpoint.Keys.Order(StringComparer.Ordinal), stateDict.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, t) in stateDict) Assert.Equal(checkpoint[key].Shape, t.shape);
    }

    [Theory]
    [InlineData("cls_relpos")]
    [InlineData("mim_shared")]
    [InlineData("seg_uper")]
    public void SaveThenLoadGivesBitIdenticalOutputsAndHuggingFaceFiles(string name)
    {
        using var dir = new TempDir();
        var io = ParityAssert.Io(Fixtures.Tiny(name));
        using var original = Load(name, Fixtures.Tiny(name));
        original.SavePretrained(dir);
        Assert.Equal([BeitConfig.FileName, SafeTensors.ModelFileName], Directory.GetFiles(dir).Select(Path.GetFileName).Order());

        // Same tensor names, shapes and bytes as the file transformers wrote.
        var hf = SafeTensors.Read(Path.Combine(Fixtures.Tiny(name), SafeTensors.ModelFileName));
        using (var fs = File.OpenRead(Path.Combine(dir, SafeTensors.ModelFileName)))
        {
            var ours = SafeTensors.Read(fs, out var metadata);
            Assert.Equal("pt", metadata["format"]);
            Assert.Equal(hf.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, t) in hf) Assert.True(t.Data.AsSpan().SequenceEqual(ours[k].Data), k);
        }
        // Every key of transformers' config.json is written back, with architectures naming our class.
        var hfConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Tiny(name), BeitConfig.FileName)))!.AsObject();
        var ourConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, BeitConfig.FileName)))!.AsObject();
        foreach (var (k, _) in hfConfig) Assert.True(ourConfig.ContainsKey(k), $"config.json lacks '{k}'");
        Assert.Equal(original.GetType().Name, ourConfig["architectures"]![0]!.GetValue<string>());

        using var reloaded = Load(name, dir);
        original.eval();
        reloaded.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var a = Outputs(original, io);
        var b = Outputs(reloaded, io);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.True(BeitTensors.ToTensorData(a[i]).Data.AsSpan().SequenceEqual(BeitTensors.ToTensorData(b[i]).Data), $"output {i} differs");
    }

    [Fact]
    public void MissingTensorIsReportedByName()
    {
        var e = LoadModified(t => t.Remove("beit.encoder.layer.2.lambda_1"));
        Assert.Equal(["beit.encoder.layer.2.lambda_1"], e.Missing);
        Assert.Empty(e.Unexpected);
        Assert.Empty(e.Mismatched);
        Assert.Contains("missing: beit.encoder.layer.2.lambda_1", e.Message);
    }

    [Fact]
    public void UnexpectedTensorIsReportedByName()
    {
        var e = LoadModified(t => t["beit.encoder.layer.0.attention.attention.key.bias"] = TensorData.FromFloats(new float[32], 32));
        Assert.Equal(["beit.encoder.layer.0.attention.attention.key.bias"], e.Unexpected);
        Assert.Empty(e.Missing);
        Assert.Contains("unexpected: beit.encoder.layer.0.attention.attention.key.bias", e.Message);
    }

    [Fact]
    public void WrongShapeIsReportedByNameWithBothShapes()
    {
        var e = LoadModified(t => t["classifier.weight"] = TensorData.FromFloats(new float[7 * 32], 7, 32));
        var m = Assert.Single(e.Mismatched);
        Assert.Equal("classifier.weight", m.Name);
        Assert.Equal(new long[] { 5, 32 }, m.Expected);
        Assert.Equal(new long[] { 7, 32 }, m.Actual);
        Assert.Contains("classifier.weight (checkpoint [7,32], model [5,32])", e.Message);
    }

    [Fact]
    public void RelativePositionIndexBuffersAreIgnoredOnLoad()
    {
        using var dir = CopyWith(t => t["beit.encoder.layer.0.attention.attention.relative_position_bias.relative_position_index"] =
            TensorData.FromInt64s(new long[17 * 17], 17, 17));
        using var model = BeitForImageClassification.FromPretrained(dir);
        Assert.Empty(model.LoadReport!.Unexpected);
    }

    [Fact]
    public void NonStrictLoadOfAPretrainingCheckpointIntoAClassifierReportsTheHeads()
    {
        var config = BeitConfig.Load(Fixtures.Tiny("mim_shared"));
        config.NumLabels = 3;
        using var model = BeitForImageClassification.FromPretrained(Fixtures.Tiny("mim_shared"), config, strict: false);
        Assert.Equal(["classifier.bias", "classifier.weight"], model.LoadReport!.Missing);
        Assert.Equal(["layernorm.bias", "layernorm.weight", "lm_head.bias", "lm_head.weight"], model.LoadReport.Unexpected);
        var strict = Assert.Throws<CheckpointMismatchException>(() => BeitForImageClassification.FromPretrained(Fixtures.Tiny("mim_shared"), config));
        Assert.Equal(2, strict.Missing.Count);
    }

    [Fact]
    public void BareBackboneLoadsTheBeitWeightsOfAHeadCheckpoint()
    {
        var io = ParityAssert.Io(Fixtures.Tiny("cls_relpos"));
        using var backbone = BeitModel.FromPretrained(Fixtures.Tiny("cls_relpos"), strict: false);
        Assert.Equal(["classifier.bias", "classifier.weight"], backbone.LoadReport!.Unexpected);
        Assert.Empty(backbone.LoadReport.Missing);
        using var classifier = BeitForImageClassification.FromPretrained(Fixtures.Tiny("cls_relpos"));
        backbone.eval();
        classifier.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ParityAssert.Input(io["pixel_values"]);
        Assert.True(backbone.forward(pixels).PoolerOutput!.eq(classifier.Beit.forward(pixels).PoolerOutput!).all().item<bool>());
    }

    [Fact]
    public void SegmentationNeedsFourFeatureIndices()
    {
        var config = BeitConfig.Load(Fixtures.Tiny("seg_uper"));
        config.OutIndices = [1, 2, 3];
        var e = Assert.Throws<ArgumentException>(() => new BeitForSemanticSegmentation(config));
        Assert.Contains("out_indices", e.Message);
        config.OutIndices = [1, 1, 2, 2];
        Assert.Throws<ArgumentException>(() => new BeitForSemanticSegmentation(config));
    }

    [Fact]
    public void IntegerTensorForAFloatWeightIsRefusedOnTheTorchSharpPath()
    {
        // classifier.bias re-typed as I32 with the same bytes: copy_ would convert it and the model would predict nonsense.
        static void Retype(Dictionary<string, TensorData> t) =>
            t["classifier.bias"] = new TensorData(TensorDType.I32, t["classifier.bias"].Shape, t["classifier.bias"].Data);
        using var dir = CopyWith(Retype);
        var e = Assert.Throws<CheckpointMismatchException>(() => BeitForImageClassification.FromPretrained(dir));
        Assert.Contains(Path.Combine(dir, SafeTensors.ModelFileName), e.Message);
        Assert.Contains("classifier.bias", e.Message);
        Assert.Equal(("classifier.bias", TensorDType.I32), (Assert.Single(e.WrongType).Name, e.WrongType[0].Actual));

        // In memory, with no file in between: LoadWeights itself refuses it, naming the source it is given.
        var tensors = SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        Retype(tensors);
        using var model = new BeitForImageClassification(BeitConfig.Load(Fixtures.Tiny("cls_relpos")));
        var inMemory = Assert.Throws<CheckpointMismatchException>(() => model.LoadWeights(tensors, "my-tensors"));
        Assert.Contains("my-tensors", inMemory.Message);
        Assert.Contains("classifier.bias (checkpoint I32, model floating-point)", inMemory.Message);
    }

    private static CheckpointMismatchException LoadModified(Action<Dictionary<string, TensorData>> change)
    {
        using var dir = CopyWith(change);
        return Assert.Throws<CheckpointMismatchException>(() => BeitForImageClassification.FromPretrained(dir));
    }

    private static TempDir CopyWith(Action<Dictionary<string, TensorData>> change)
    {
        var dir = new TempDir();
        File.Copy(Path.Combine(Fixtures.Tiny("cls_relpos"), BeitConfig.FileName), Path.Combine(dir, BeitConfig.FileName));
        var tensors = SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        change(tensors);
        SafeTensors.Write(Path.Combine(dir, SafeTensors.ModelFileName), tensors);
        return dir;
    }

    private static BeitPreTrainedModel Create(string name, BeitConfig config) => name switch
    {
        "cls_relpos" => new BeitForImageClassification(config),
        "mim_shared" => new BeitForMaskedImageModeling(config),
        _ => new BeitForSemanticSegmentation(config),
    };

    private static BeitPreTrainedModel Load(string name, string folder) => name switch
    {
        "cls_relpos" => BeitForImageClassification.FromPretrained(folder),
        "mim_shared" => BeitForMaskedImageModeling.FromPretrained(folder),
        _ => BeitForSemanticSegmentation.FromPretrained(folder),
    };

    private static Tensor[] Outputs(BeitPreTrainedModel model, Dictionary<string, TensorData> io)
    {
        var pixels = ParityAssert.Input(io["pixel_values"]);
        var labels = ParityAssert.Input(io["labels"]);
        return model switch
        {
            BeitForImageClassification c => c.forward(pixels, labels, outputHiddenStates: true) is var o ? [o.Logits, o.Loss!, .. o.HiddenStates!] : [],
            BeitForMaskedImageModeling m => m.forward(pixels, ParityAssert.Input(io["bool_masked_pos"]), labels) is var o ? [o.Logits, o.Loss!] : [],
            BeitForSemanticSegmentation s => s.forward(pixels, labels) is var o ? [o.Logits, o.Loss!, o.AuxiliaryLogits!, .. o.FeatureMaps] : [],
            _ => throw new ArgumentException(model.GetType().Name),
        };
    }
}

/// <summary>Half-precision checkpoints load with each value widened exactly.</summary>
public class BeitHalfPrecisionCheckpointTests
{
    [Theory]
    [InlineData(TensorDType.F16)]
    [InlineData(TensorDType.BF16)]
    public void LoadsF16AndBf16Weights(TensorDType dtype)
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Fixtures.Tiny("cls_relpos"), BeitConfig.FileName), Path.Combine(dir, BeitConfig.FileName));
        var f32 = SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        var narrowed = new Dictionary<string, TensorData>();
        var expected = new Dictionary<string, float[]>();
        foreach (var (name, t) in f32)
        {
            var values = t.ToFloatArray();
            byte[] bytes = dtype == TensorDType.F16
                ? values.SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray()
                : values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(v) >>> 16))).ToArray(); // truncating
            narrowed[name] = new TensorData(dtype, t.Shape, bytes);
            expected[name] = narrowed[name].ToFloatArray();
        }
        SafeTensors.Write(Path.Combine(dir, SafeTensors.ModelFileName), narrowed);
        using var model = BeitForImageClassification.FromPretrained(dir);
        foreach (var (name, p) in model.state_dict())
        {
            var actual = BeitTensors.ToTensorData(p);
            Assert.Equal(TensorDType.F32, actual.DType);
            Assert.Equal(expected[name], actual.ToFloatArray());
        }
    }
}
