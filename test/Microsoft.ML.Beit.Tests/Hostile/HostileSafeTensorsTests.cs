using Microsoft.ML.Beit;
using System.Text;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Xunit.Abstractions;

namespace Beit.Tests.Hostile;

/// <summary>Crafted safetensors files and shard indexes: each is refused with a typed exception naming the file, quickly.</summary>
public sealed class HostileSafeTensorsTests(ITestOutputHelper log) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A safetensors file with the given header JSON and <paramref name="dataBytes"/> zero bytes of data.</summary>
    internal static byte[] Craft(string header, long dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(header);
        return [.. BitConverter.GetBytes((long)h.Length), .. h, .. new byte[dataBytes]];
    }

    private string Write(byte[] bytes, string name = "model.safetensors")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private void Refused(string header, long dataBytes, params string[] mentions)
    {
        string path = Write(Craft(header, dataBytes));
        Bounded.Throws<InvalidDataException>(log, () => SafeTensors.Read(path), [path, .. mentions]);
    }

    [Fact]
    public void WellFormedCraftedFileIsRead()
    {
        // The control: the crafting helper itself makes valid files, so each refusal below is about its one defect.
        string path = Write(Craft("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}""", 16));
        var t = SafeTensors.Read(path);
        Assert.Equal(new long[] { 2 }, t["a"].Shape);
        Assert.Equal(TensorDType.I64, t["b"].DType);
    }

    [Fact]
    public void OverlappingOffsetsAreRefused() =>
        Refused("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "'b'", "overlaps");

    [Fact]
    public void AliasedTensorsAreRefused() =>
        Refused("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, "overlaps");

    [Fact]
    public void HoleBetweenTensorsIsRefused() =>
        Refused("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}""", 20, "'b'", "hole");

    [Fact]
    public void BytesNoTensorCoversAreRefused() =>
        Refused("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 9, "1 bytes that no tensor covers");

    [Fact]
    public void DataShorterThanTheHeaderDeclaresIsRefused() =>
        Refused("""{"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}""", 8, "truncated");

    [Fact]
    public void ShapeWhoseElementCountWrapsToZeroIsRefused() =>
        // 2^32 · 2^32 = 2^64, which wraps to 0 in 64-bit arithmetic and would "fit" empty offsets.
        Refused("""{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}""", 0, "'a'", "elements");

    [Theory]
    [InlineData("null")]
    [InlineData("-1")]
    [InlineData("1e30")]
    [InlineData("18446744073709551616")]
    [InlineData("1.5")]
    [InlineData("\"2\"")]
    public void BadShapeEntryIsRefused(string entry) =>
        Refused($$$"""{"a":{"dtype":"F32","shape":[{{{entry}}}],"data_offsets":[0,8]}}""", 8, "'a'", "shape");

    [Theory]
    [InlineData("[\"0\",\"8\"]")]
    [InlineData("[0,null]")]
    [InlineData("[-8,0]")]
    [InlineData("[0]")]
    [InlineData("[0,8,16]")]
    [InlineData("\"0-8\"")]
    public void BadOffsetsAreRefused(string offsets) =>
        Refused($$$"""{"a":{"dtype":"F32","shape":[2],"data_offsets":{{{offsets}}}}}""", 8, "'a'", "data_offsets");

    [Theory]
    [InlineData("7")]
    [InlineData("null")]
    [InlineData("\"F33\"")]
    [InlineData("\"0\"")]
    [InlineData("\"F32, I64\"")]
    [InlineData("\"f32\"")]
    public void BadDTypeIsRefused(string dtype) =>
        Refused($$$"""{"a":{"dtype":{{{dtype}}},"shape":[2],"data_offsets":[0,8]}}""", 8, "'a'", "dtype");

    [Theory]
    [InlineData("{\"format\":1}")]
    [InlineData("{\"format\":null}")]
    [InlineData("{\"format\":{\"x\":\"y\"}}")]
    [InlineData("[\"pt\"]")]
    public void NonStringMetadataIsRefused(string metadata) =>
        Refused($$$"""{"__metadata__":{{{metadata}}},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, "__metadata__");

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""")]
    [InlineData("""{"a":{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}}""")]
    [InlineData("""{"__metadata__":{"format":"pt","format":"np"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""")]
    public void DuplicateKeysAreRefused(string header) => Refused(header, 8, "not valid JSON");

    [Theory]
    [InlineData(1_000_000L)]        // more than the file holds
    [InlineData(-5L)]
    [InlineData(long.MaxValue)]
    [InlineData(200L * 1024 * 1024)] // over the 100 MB bound of the format
    public void HeaderLengthOutsideTheFileIsRefusedBeforeAllocating(long length)
    {
        string path = Write([.. BitConverter.GetBytes(length), .. "{}"u8.ToArray()]);
        Bounded.Throws<InvalidDataException>(log, () => SafeTensors.Read(path), path, "header length");
    }

    [Fact]
    public void NonSeekableStreamIsReadWithTheSameChecks()
    {
        var bytes = Craft("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12);
        Bounded.Throws<InvalidDataException>(log, () => SafeTensors.Read(new NonSeekable(bytes), out _), "overlaps");
        var good = Craft("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8);
        Assert.Equal(new long[] { 2 }, SafeTensors.Read(new NonSeekable(good), out _)["a"].Shape);
        // A header declaring 1 GB over a 8-byte stream: refused without buffering more than the stream holds.
        var huge = Craft("""{"a":{"dtype":"U8","shape":[1000000000],"data_offsets":[0,1000000000]}}""", 8);
        Bounded.Throws<InvalidDataException>(log, () => SafeTensors.Read(new NonSeekable(huge), out _), "truncated");
    }

    // ------------------------------------------------------------------ element types

    /// <summary>The tiny classifier checkpoint with <c>classifier.bias</c> re-typed as I32 (same bytes).</summary>
    internal static string I32Checkpoint(string dir)
    {
        var tensors = SafeTensors.Read(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        var bias = tensors["classifier.bias"];
        tensors["classifier.bias"] = new TensorData(TensorDType.I32, bias.Shape, bias.Data);
        File.Copy(Path.Combine(Fixtures.Tiny("cls_relpos"), "config.json"), Path.Combine(dir, "config.json"));
        SafeTensors.Write(Path.Combine(dir, SafeTensors.ModelFileName), tensors);
        return Path.Combine(dir, SafeTensors.ModelFileName);
    }

    [Fact]
    public void IntegerTensorForAFloatWeightIsRefusedOnTheOnnxPath()
    {
        string file = I32Checkpoint(_dir);
        var e = Bounded.Throws<CheckpointMismatchException>(log,
            () => BeitOnnxExporter.ExportToBytes(_dir, BeitOnnxTask.ImageClassification), file, "classifier.bias", "I32");
        Assert.Equal("classifier.bias", Assert.Single(e.WrongType).Name);
        Bounded.Throws<CheckpointMismatchException>(log, () => BeitCheckpoint.ReadTensors(_dir), file, "classifier.bias");

        // In memory, without a file: the exporter's own check.
        var tensors = SafeTensors.Read(file);
        Bounded.Throws<CheckpointMismatchException>(log,
            () => BeitOnnxExporter.ExportToBytes(BeitConfig.Load(_dir), tensors, BeitOnnxTask.ImageClassification), "classifier.bias", "I32");
    }

    // ------------------------------------------------------------------ sharded indexes

    private void WriteShard(string name) =>
        SafeTensors.Write(Path.Combine(_dir, name), new Dictionary<string, TensorData> { ["x"] = TensorData.FromFloats([1f], 1) });

    [Theory]
    [InlineData(SafeTensors.IndexFileName)]
    [InlineData(PyTorchCheckpoint.IndexFileName)]
    public void IndexNamingItselfIsRefused(string indexName)
    {
        string index = Path.Combine(_dir, indexName);
        File.WriteAllText(index, $$$"""{"weight_map":{"x":"{{{indexName}}}"}}""");
        Bounded.Throws<InvalidDataException>(log, () => BeitCheckpoint.ReadTensors(_dir), index, "index");
    }

    [Fact]
    public void IndexesNamingEachOtherAreRefused()
    {
        string a = Path.Combine(_dir, SafeTensors.IndexFileName);
        File.WriteAllText(a, """{"weight_map":{"x":"other.index.json"}}""");
        File.WriteAllText(Path.Combine(_dir, "other.index.json"), $$$"""{"weight_map":{"x":"{{{SafeTensors.IndexFileName}}}"}}""");
        Bounded.Throws<InvalidDataException>(log, () => SafeTensors.Read(a), a, "other.index.json");
        string bin = Path.Combine(_dir, PyTorchCheckpoint.IndexFileName);
        File.WriteAllText(bin, """{"weight_map":{"x":"other.index.json"}}""");
        Bounded.Throws<InvalidDataException>(log, () => PyTorchCheckpoint.Read(bin), bin, "other.index.json");
    }

    [Theory]
    [InlineData("../model.safetensors")]
    [InlineData("sub/model-1.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    [InlineData("")]
    [InlineData("a\\\\b.safetensors")]
    public void ShardOutsideTheFolderIsRefused(string shard)
    {
        WriteShard("model-1.safetensors");
        string index = Path.Combine(_dir, SafeTensors.IndexFileName);
        File.WriteAllText(index, $$$"""{"weight_map":{"x":"{{{shard}}}"}}""");
        Bounded.Throws<InvalidDataException>(log, () => BeitCheckpoint.ReadTensors(_dir), index, "plain file name");
    }

    [Theory]
    [InlineData("null")]
    [InlineData("7")]
    [InlineData("[\"model-1.safetensors\"]")]
    public void ShardNameThatIsNotAStringIsRefused(string value)
    {
        WriteShard("model-1.safetensors");
        string index = Path.Combine(_dir, SafeTensors.IndexFileName);
        File.WriteAllText(index, $$$"""{"weight_map":{"x":{{{value}}}}}""");
        Bounded.Throws<InvalidDataException>(log, () => BeitCheckpoint.ReadTensors(_dir), index, "'x'");
    }

    [Fact]
    public void MissingShardNamesTheIndexAndTheShard()
    {
        string index = Path.Combine(_dir, SafeTensors.IndexFileName);
        File.WriteAllText(index, """{"weight_map":{"x":"model-9.safetensors"}}""");
        Bounded.Throws<FileNotFoundException>(log, () => BeitCheckpoint.ReadTensors(_dir), index, "model-9.safetensors");
    }

    [Fact]
    public void ValidShardedIndexStillReads()
    {
        WriteShard("model-1.safetensors");
        File.WriteAllText(Path.Combine(_dir, SafeTensors.IndexFileName), """{"metadata":{},"weight_map":{"x":"model-1.safetensors"}}""");
        Assert.Equal(["x"], BeitCheckpoint.ReadTensors(_dir).Keys);
    }

    /// <summary>A read-only stream that cannot seek, as a network or zip-entry stream.</summary>
    private sealed class NonSeekable(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
