using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests;

public class SafeTensorsTests
{
    [Fact]
    public void ReadsHuggingFaceFixtureCheckpoint()
    {
        var t = SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        Assert.Equal(new long[] { 32, 3, 8, 8 }, t["beit.embeddings.patch_embeddings.projection.weight"].Shape);
        Assert.Equal(new long[] { 5, 32 }, t["classifier.weight"].Shape);
        Assert.All(t.Values, v => Assert.Equal(TensorDType.F32, v.DType));
    }

    [Fact]
    public void ReadsFixtureInputsOfEveryDType()
    {
        var io = SafeTensors.Read(Path.Combine(Fixtures.Tiny("mim_shared"), "io.safetensors"));
        Assert.Equal(TensorDType.BOOL, io["bool_masked_pos"].DType);
        Assert.Equal(new long[] { 2, 16 }, io["bool_masked_pos"].Shape);
        Assert.Equal(TensorDType.I64, io["labels"].DType);
        Assert.Equal(io["labels"].ElementCount, io["bool_masked_pos"].ToBoolArray().Count(b => b));
    }

    [Fact]
    public void WriteThenReadRoundTripsEveryDType()
    {
        using var dir = new TempDir();
        var tensors = new Dictionary<string, TensorData>
        {
            ["f32"] = TensorData.FromFloats([1.5f, -2f, 3.25f], 3),
            ["i64"] = TensorData.FromInt64s([long.MaxValue, -1], 2, 1),
            ["bool"] = TensorData.FromBools([true, false, true, true], 2, 2),
            ["f16"] = new TensorData(TensorDType.F16, [2], BitConverter.GetBytes((Half)0.5f).Concat(BitConverter.GetBytes((Half)(-3f))).ToArray()),
            ["bf16"] = new TensorData(TensorDType.BF16, [1], [0x80, 0x3f]), // 1.0
        };
        var path = Path.Combine(dir, "x.safetensors");
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var back = SafeTensors.Read(path);
        Assert.Equal(new float[] { 1.5f, -2f, 3.25f }, back["f32"].ToFloatArray());
        Assert.Equal(new long[] { long.MaxValue, -1 }, back["i64"].ToInt64Array());
        Assert.Equal(new[] { true, false, true, true }, back["bool"].ToBoolArray());
        Assert.Equal(new float[] { 0.5f, -3f }, back["f16"].ToFloatArray());
        Assert.Equal(new float[] { 1f }, back["bf16"].ToFloatArray());
        Assert.Equal(new long[] { 2, 1 }, back["i64"].Shape);
        Assert.Single(Directory.GetFiles(dir));
    }

    [Fact]
    public void TruncatedFileGivesClearErrorNamingIt()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        var path = Path.Combine(dir, "cut.safetensors");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.Contains("cut.safetensors", e.Message);
        Assert.Contains("truncated", e.Message);
    }
}
