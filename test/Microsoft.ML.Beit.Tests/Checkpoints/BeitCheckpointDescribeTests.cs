using Beit.Tests.Hub;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Processing;

namespace Beit.Tests.Checkpoints;

/// <summary><see cref="BeitCheckpoint.Describe"/>: configuration, labels and every tensor's name, dtype and shape.</summary>
public sealed class BeitCheckpointDescribeTests
{
    private static readonly string[] TinyLabels = ["cat", "dog", "bird", "fish", "horse"];

    /// <summary>The tiny classifier's tensor count and element count (its safetensors file, read in full).</summary>
    private const int TinyTensorCount = 79;
    private const long TinyParameters = 41_573;

    /// <summary>A tensor's dtype and shape as text, e.g. <c>F32[5,32]</c> (tuples of arrays would compare by reference).</summary>
    private static string Describe(TensorDType dtype, long[] shape) => $"{dtype}[{string.Join(",", shape)}]";

    private static string Find(BeitCheckpointInfo info, string name) =>
        info.Tensors.Single(t => t.Name == name) is var t ? Describe(t.DType, t.Shape) : "";

    [Fact]
    public void Safetensors_ListsConfigurationLabelsAndEveryTensorFromTheHeader()
    {
        string folder = Fixtures.Tiny("cls_relpos");
        var info = BeitCheckpoint.Describe(folder);

        Assert.Equal(folder, info.Folder);
        Assert.Equal("beit", info.ModelType);
        Assert.Equal((4, 32, 4, 64, 32, 8), (info.Config.NumHiddenLayers, info.Config.HiddenSize, info.Config.NumAttentionHeads,
                                             info.Config.IntermediateSize, info.Config.ImageSize, info.Config.PatchSize));
        Assert.Null(info.Preprocessor);
        Assert.Equal(TinyLabels, info.Labels);
        Assert.Equal([SafeTensors.ModelFileName], info.WeightFiles);

        Assert.Equal(TinyTensorCount, info.Tensors.Count);
        Assert.Equal(info.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), info.Tensors.Select(t => t.Name));
        Assert.Equal("F32[32,3,8,8]", Find(info, "beit.embeddings.patch_embeddings.projection.weight"));
        Assert.Equal("F32[1,1,32]", Find(info, "beit.embeddings.cls_token"));
        Assert.Equal("F32[52,4]",
                     Find(info, "beit.encoder.layer.2.attention.attention.relative_position_bias.relative_position_bias_table"));
        Assert.Equal("F32[5,32]", Find(info, "classifier.weight"));

        // The header-only listing agrees with reading every tensor.
        var full = SafeTensors.Read(Path.Combine(folder, SafeTensors.ModelFileName));
        Assert.Equal(full.Keys.Order(StringComparer.Ordinal), info.Tensors.Select(t => t.Name));
        foreach (var (name, dtype, shape) in info.Tensors) Assert.Equal(Describe(full[name].DType, full[name].Shape), Describe(dtype, shape));
        Assert.Equal(full.Values.Sum(t => t.ElementCount), info.Parameters);
        Assert.Equal(TinyParameters, info.Parameters);
    }

    [Fact]
    public void PytorchBin_ListsTheNamesTheFileUses_WithTheSameShapesAsItsSafetensorsCopy()
    {
        var info = BeitCheckpoint.Describe(Fixtures.Tiny("cls_relpos_bin"));
        var safetensors = BeitCheckpoint.Describe(Fixtures.Tiny("cls_relpos"));

        Assert.Equal([PyTorchCheckpoint.ModelFileName], info.WeightFiles);
        Assert.Equal(TinyLabels, info.Labels);
        // The fixture was saved by transformers v5, whose module names differ from the safetensors file's.
        Assert.Equal("F32[32,32]", Find(info, "beit.layers.0.attention.q_proj.weight"));
        Assert.Equal("F32[64,32]", Find(info, "beit.layers.3.mlp.fc1.weight"));
        Assert.Equal("F32[5,32]", Find(info, "classifier.weight"));
        Assert.Equal(TinyTensorCount, info.Tensors.Count);
        Assert.Equal(TinyParameters, info.Parameters);
        var classic = info.Tensors.ToDictionary(t => BeitWeightNames.ToClassic(t.Name), t => Describe(t.DType, t.Shape));
        foreach (var (name, dtype, shape) in safetensors.Tensors) Assert.Equal(Describe(dtype, shape), classic[name]);
    }

    [Fact]
    public void ShardedSafetensorsWithPreprocessor_ListsIndexShardsAndPreprocessor_AndNamesATruncatedShard()
    {
        using var dir = new TempDir();
        foreach (var (name, bytes) in HubRepos.ShardedFiles()) File.WriteAllBytes(Path.Combine(dir, name), bytes);
        var processor = new BeitImageProcessor { Size = ResizeSize.Exact(40, 48), CropSize = new PixelSize(32, 32), ImageMean = [0.485, 0.456, 0.406] };
        File.WriteAllText(Path.Combine(dir, BeitImageProcessor.ConfigFileName), processor.ToJson());

        var info = BeitCheckpoint.Describe(dir);
        Assert.Equal([SafeTensors.IndexFileName, "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], info.WeightFiles);
        var single = BeitCheckpoint.Describe(Fixtures.Tiny("cls_relpos"));
        Assert.Equal(single.Tensors.Select(t => t.Name + Describe(t.DType, t.Shape)), info.Tensors.Select(t => t.Name + Describe(t.DType, t.Shape)));
        Assert.Equal(TinyParameters, info.Parameters);
        Assert.NotNull(info.Preprocessor);
        Assert.Equal(new PixelSize(32, 32), info.Preprocessor.CropSize);
        Assert.Equal((40, 48), (info.Preprocessor.Size.Height, info.Preprocessor.Size.Width));
        Assert.Equal([0.485, 0.456, 0.406], info.Preprocessor.ImageMean);

        // Headers alone would not notice missing data: the listing checks each tensor's bytes lie within its file.
        string shard = Path.Combine(dir, "model-00002-of-00002.safetensors");
        using (var stream = new FileStream(shard, FileMode.Open)) stream.SetLength(stream.Length - 4);
        var e = Assert.Throws<InvalidDataException>(() => BeitCheckpoint.Describe(dir));
        Assert.Contains(shard, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void MissingFolderOrWeights_ThrowTypedExceptionsNamingThePath()
    {
        using var dir = new TempDir();
        string absent = Path.Combine(dir, "absent");
        Assert.Contains(absent, Assert.Throws<DirectoryNotFoundException>(() => BeitCheckpoint.Describe(absent)).Message);
        File.Copy(Path.Combine(Fixtures.Tiny("cls_relpos"), "config.json"), Path.Combine(dir, "config.json"));
        Assert.Contains(dir, Assert.Throws<FileNotFoundException>(() => BeitCheckpoint.Describe(dir)).Message);
    }
}
