using System.Text;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests;

public class PyTorchCheckpointTests
{
    [Fact]
    public void ReadsHuggingFaceBinIdenticalToItsSafetensorsCopy()
    {
        // The fixture is a raw torch.save of a transformers-v5 state dict, so it uses v5 module names.
        var raw = PyTorchCheckpoint.Read(Path.Combine(Fixtures.Tiny("cls_relpos_bin"), PyTorchCheckpoint.ModelFileName));
        Assert.Contains("beit.layers.0.attention.q_proj.weight", raw.Keys);
        var bin = BeitCheckpoint.ReadTensors(Fixtures.Tiny("cls_relpos_bin"));
        var st = BeitCheckpoint.ReadTensors(Fixtures.Tiny("cls_relpos"));
        Assert.Equal(st.Keys.Order(), bin.Keys.Order());
        foreach (var (name, t) in st)
        {
            Assert.Equal(t.DType, bin[name].DType);
            Assert.Equal(t.Shape, bin[name].Shape);
            Assert.True(t.Data.AsSpan().SequenceEqual(bin[name].Data), name);
        }
    }

    [Theory]
    [InlineData("beit.layers.3.attention.q_proj.bias", "beit.encoder.layer.3.attention.attention.query.bias")]
    [InlineData("beit.layers.0.attention.o_proj.weight", "beit.encoder.layer.0.attention.output.dense.weight")]
    [InlineData("beit.layers.1.mlp.fc1.weight", "beit.encoder.layer.1.intermediate.dense.weight")]
    [InlineData("beit.layers.1.mlp.fc2.bias", "beit.encoder.layer.1.output.dense.bias")]
    [InlineData("beit.layers.2.relative_position_bias.relative_position_bias_table", "beit.encoder.layer.2.attention.attention.relative_position_bias.relative_position_bias_table")]
    [InlineData("layers.0.attention.k_proj.weight", "encoder.layer.0.attention.attention.key.weight")]
    [InlineData("beit.encoder.layer.0.output.dense.weight", "beit.encoder.layer.0.output.dense.weight")]
    [InlineData("beit.encoder.relative_position_bias.relative_position_bias_table", "beit.encoder.relative_position_bias.relative_position_bias_table")]
    [InlineData("decode_head.fpn_convs.0.conv.weight", "decode_head.fpn_convs.0.conv.weight")]
    public void MapsTransformersV5NamesToClassic(string name, string classic) => Assert.Equal(classic, BeitWeightNames.ToClassic(name));

    [Fact]
    public void CheckpointFolderFallsBackToPytorchModelBin()
    {
        var t = BeitCheckpoint.ReadTensors(Fixtures.Tiny("cls_relpos_bin"));
        Assert.Equal(new long[] { 5, 32 }, t["classifier.weight"].Shape);
    }

    [Fact]
    public void SafetensorsWinsOverBinInTheSameFolder()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(Path.Combine(dir, PyTorchCheckpoint.ModelFileName), [1, 2, 3]); // would fail if read
        SafeTensors.Write(Path.Combine(dir, SafeTensors.ModelFileName), new Dictionary<string, TensorData> { ["x"] = TensorData.FromFloats([1f], 1) });
        Assert.Equal(["x"], BeitCheckpoint.ReadTensors(dir).Keys);
    }

    [Fact]
    public void RefusesOsSystemGlobalWithoutRunningIt()
    {
        string marker = Path.Combine(Path.GetTempPath(), "beit-pwned-" + Guid.NewGuid().ToString("N"));
        // The classic exploit: os.system("touch <marker>") through GLOBAL + REDUCE.
        var p = new PickleWriter().Proto().Global("os", "system").Unicode("touch " + marker).Tuple1().Reduce().Stop();
        var e = Assert.Throws<UnsafePickleException>(() => ReadCrafted(p.Bytes()));
        Assert.Equal("os.system", e.Refused);
        Assert.Contains("os.system", e.Message);
        Assert.Contains("crafted.bin", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void RefusesStackGlobalOfBuiltinsEval()
    {
        var p = new PickleWriter().Proto(4).Unicode("builtins").Unicode("eval").Op(0x93).Unicode("1+1").Tuple1().Reduce().Stop();
        var e = Assert.Throws<UnsafePickleException>(() => ReadCrafted(p.Bytes()));
        Assert.Equal("builtins.eval", e.Refused);
    }

    [Fact]
    public void RefusesInstOpcode()
    {
        // INST builds an instance of a class named inline, bypassing GLOBAL.
        var p = new PickleWriter().Proto().Op('(').Raw("isubprocess\nPopen\n").Stop();
        var e = Assert.Throws<UnsafePickleException>(() => ReadCrafted(p.Bytes()));
        Assert.Equal("INST", e.Refused);
    }

    [Fact]
    public void RefusesCallingAnAllowedTypeThatIsNotARebuildFunction()
    {
        var p = new PickleWriter().Proto().Global("torch", "FloatStorage").Op(')').Reduce().Stop();
        var e = Assert.Throws<UnsafePickleException>(() => ReadCrafted(p.Bytes()));
        Assert.Equal("torch.FloatStorage", e.Refused);
    }

    [Fact]
    public void RebuildsStridedViewsWithOffsetsAndBigEndianStorages()
    {
        // Storage of 5 floats [9, 1, 2, 3, 4]; "t" is the [2,2] view at offset 1 with strides (1, 2): [[1,3],[2,4]].
        float[] storage = [9, 1, 2, 3, 4];
        foreach (bool big in new[] { false, true })
        {
            var bytes = storage.SelectMany(v => { var b = BitConverter.GetBytes(v); if (big) Array.Reverse(b); return b; }).ToArray();
            var p = new PickleWriter().Proto()
                .Global("collections", "OrderedDict").Op(')').Reduce()
                .Unicode("t")
                .Global("torch._utils", "_rebuild_tensor_v2")
                .Op('(')
                    .Op('(').Unicode("storage").Global("torch", "FloatStorage").Unicode("0").Unicode("cpu").Int(5).Op('t').Op('Q')
                    .Int(1).Int(2).Int(2).Tuple2().Int(1).Int(2).Tuple2().Op(0x89)
                    .Global("collections", "OrderedDict").Op(')').Reduce()
                .Op('t').Reduce()
                .Op('s').Stop();
            var t = ReadCrafted(p.Bytes(), ("data/0", bytes), ("byteorder", Encoding.ASCII.GetBytes(big ? "big" : "little")))["t"];
            Assert.Equal(new long[] { 2, 2 }, t.Shape);
            Assert.Equal(new float[] { 1, 3, 2, 4 }, t.ToFloatArray());
        }
    }

    [Fact]
    public void RejectsTensorsReachingPastTheirStorage()
    {
        // Claims 1000 elements of a 2-float storage: a clear error, not an out-of-range read.
        var p = new PickleWriter().Proto()
            .Global("collections", "OrderedDict").Op(')').Reduce()
            .Unicode("t")
            .Global("torch._utils", "_rebuild_tensor_v2")
            .Op('(')
                .Op('(').Unicode("storage").Global("torch", "FloatStorage").Unicode("0").Unicode("cpu").Int(1000).Op('t').Op('Q')
                .Int(0).Int(1000).Tuple1().Int(1).Tuple1().Op(0x89).Op('N')
            .Op('t').Reduce()
            .Op('s').Stop();
        var e = Assert.Throws<InvalidDataException>(() => ReadCrafted(p.Bytes(), ("data/0", new byte[8])));
        Assert.Contains("storage '0'", e.Message);
    }

    [Fact]
    public void RefusesLegacyAndNonZipFilesWithAClearMessage()
    {
        var legacy = Assert.Throws<InvalidDataException>(() => PyTorchCheckpoint.Read(new MemoryStream([0x80, 0x02, 0x8a, 0x0a]), "old.bin"));
        Assert.Contains("legacy", legacy.Message);
        var junk = Assert.Throws<InvalidDataException>(() => PyTorchCheckpoint.Read(new MemoryStream(Encoding.ASCII.GetBytes("hello world")), "junk.bin"));
        Assert.Contains("junk.bin", junk.Message);
    }

    [Fact]
    public void ReadsShardedBinThroughItsIndex()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Fixtures.Tiny("cls_relpos_bin"), PyTorchCheckpoint.ModelFileName), Path.Combine(dir, "pytorch_model-00001-of-00001.bin"));
        File.WriteAllText(Path.Combine(dir, PyTorchCheckpoint.IndexFileName),
            "{\"metadata\":{},\"weight_map\":{\"classifier.weight\":\"pytorch_model-00001-of-00001.bin\"}}");
        var t = BeitCheckpoint.ReadTensors(dir);
        Assert.True(t.ContainsKey("classifier.weight"));
    }

    private static Dictionary<string, TensorData> ReadCrafted(byte[] pickle, params (string Name, byte[] Data)[] extra) =>
        PickleWriter.ReadCrafted(pickle, extra);
}
