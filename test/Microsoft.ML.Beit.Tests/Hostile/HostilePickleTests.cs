using System.IO.Compression;
using System.Text;
using Microsoft.ML.Beit.Checkpoints;
using Xunit.Abstractions;

namespace Beit.Tests.Hostile;

/// <summary>
/// Crafted <c>pytorch_model.bin</c> pickles that used to overflow the stack, blow up exponentially, allocate gigabytes or
/// burn CPU. The unpickler is iterative and nothing that walks its values recurses without a bound, so a regression
/// here fails on the time or allocation bound (or, for a stack overflow, aborts the run loudly) rather than passing.
/// </summary>
public sealed class HostilePickleTests(ITestOutputHelper log)
{
    private T Refused<T>(byte[] pickle, (string, byte[])[] records, params string[] mentions) where T : Exception =>
        Bounded.Throws<T>(log, () => PickleWriter.ReadCrafted(pickle, records), ["crafted.bin", .. mentions]);

    private T Refused<T>(PickleWriter p, params string[] mentions) where T : Exception => Refused<T>(p.Bytes(), [], mentions);

    [Fact]
    public void TupleNested200000DeepIsRefusedWithoutRecursion()
    {
        var p = new PickleWriter().Proto().Op(')');
        for (int i = 0; i < 200_000; i++) p.Tuple1();
        Refused<InvalidDataException>(p.Stop(), "nested more than 100");
    }

    [Fact]
    public void ListNested200000DeepIsRefusedWithoutRecursion()
    {
        // EMPTY_LIST × n, then APPEND × (n − 1): each list appended into the one below it.
        var p = new PickleWriter().Proto();
        for (int i = 0; i < 200_000; i++) p.Op(']');
        for (int i = 1; i < 200_000; i++) p.Op('a');
        Refused<InvalidDataException>(p.Stop(), "containers");
    }

    [Fact]
    public void DictNested200000DeepIsRefusedWithoutRecursion()
    {
        // EMPTY_DICT, then n × (key, EMPTY_DICT), then SETITEM × n: each dict stored under "k" in the one below it.
        var p = new PickleWriter().Proto().Op('}');
        for (int i = 0; i < 200_000; i++) p.Op('K').Op(1).Op('}');
        for (int i = 0; i < 200_000; i++) p.Op('s');
        Refused<InvalidDataException>(p.Stop(), "containers");
    }

    /// <summary>A tuple DAG: t0 = (), t(i+1) = (t(i), t(i)) through the memo; fully expanded it has 2^depth leaves.</summary>
    private static PickleWriter Dag(PickleWriter p, int depth)
    {
        p.Op(')').Put(0);
        for (int i = 0; i < depth; i++) p.Op('0').Get(0).Get(0).Tuple2().Put(0);
        return p;
    }

    [Fact]
    public void MillionsOfOneByteValuesAreRefusedBeforeTheyExhaustMemory()
    {
        // 3 M × NONE (1 byte each, 24 B of stack each once pushed) into one list through MARK … APPENDS.
        var p = new PickleWriter().Proto().Op(']').Op('(').Raw(new string('N', 3_000_000)).Op('e').Stop();
        Refused<InvalidDataException>(p, "values");
        // 3 M × MEMOIZE of the same value: each one a memo entry.
        var m = new PickleWriter().Proto().Op('N').Raw(Enumerable.Repeat((byte)0x94, 3_000_000).ToArray()).Stop();
        Refused<InvalidDataException>(m, "memo");
    }

    [Fact]
    public void SharedMemoTupleDagOfDepth60IsRefusedInLinearTime()
    {
        var bytes = Dag(new PickleWriter().Proto(), 60).Stop().Bytes();
        Assert.True(bytes.Length < 500, $"{bytes.Length} bytes");
        Refused<InvalidDataException>(bytes, [], "not a state dict");
    }

    [Fact]
    public void SharedMemoTupleDagAsADictKeyIsRefused()
    {
        var p = Dag(new PickleWriter().Proto().OrderedDict(), 60).Op('N').Op('s').Stop();
        Refused<InvalidDataException>(p, "dict key");
    }

    [Fact]
    public void SharedMemoTupleDagAsAPersistentIdIsRefused()
    {
        var p = Dag(new PickleWriter().Proto(), 60).Op('Q').Stop();
        Refused<InvalidDataException>(p, "persistent id");
    }

    [Fact]
    public void SharedMemoTupleDagAsTensorSizesIsRefused()
    {
        var p = new PickleWriter().Proto().OrderedDict().Unicode("t")
            .Global("torch._utils", "_rebuild_tensor_v2").Op('(')
                .Op('(').Unicode("storage").Global("torch", "FloatStorage").Unicode("0").Unicode("cpu").Int(1).Op('t').Op('Q')
                .Int(0);
        Dag(p, 60).Get(0).Op(0x89).Op('N').Op('t').Reduce().Op('s').Stop();
        Refused<InvalidDataException>(p.Bytes(), [("data/0", new byte[4])], "expected an integer");
    }

    [Fact]
    public void StrideZeroViewOf1Point9BillionElementsOverOneByteIsRefusedBeforeAllocating()
    {
        var p = new PickleWriter().Proto().OrderedDict().Unicode("t")
            .Tensor("ByteStorage", "0", 1, 0, [1_900_000_000], [0]).Op('s').Stop();
        Refused<InvalidDataException>(p.Bytes(), [("data/0", new byte[1])], "storage '0'", "2×");
    }

    [Fact]
    public void StorageDeclaring1Point9BillionElementsOverOneByteIsRefusedBeforeReading()
    {
        var p = new PickleWriter().Proto().OrderedDict().Unicode("t")
            .Tensor("FloatStorage", "0", 1_900_000_000, 0, [1_900_000_000], [1]).Op('s').Stop();
        Refused<InvalidDataException>(p.Bytes(), [("data/0", new byte[1])], "storage '0'", "1 bytes");
    }

    [Fact]
    public void ManyViewsOfOneStorageCannotMultiplyItsSize()
    {
        // 64 full views of a 64 KiB storage would materialize 4 MiB from a 64 KiB file.
        var p = new PickleWriter().Proto().OrderedDict();
        for (int i = 0; i < 64; i++) p.Unicode($"t{i}").Tensor("FloatStorage", "0", 16384, 0, [16384], [1]).Op('s');
        Refused<InvalidDataException>(p.Stop().Bytes(), [("data/0", new byte[65536])], "2×");
    }

    [Fact]
    public void ViewReachingPastItsStorageIsRefused()
    {
        // Offset near long.MaxValue: the reach is computed with checked arithmetic.
        var p = new PickleWriter().Proto().OrderedDict().Unicode("t")
            .Global("torch._utils", "_rebuild_tensor_v2").Op('(')
                .Op('(').Unicode("storage").Global("torch", "FloatStorage").Unicode("0").Unicode("cpu").Int(4).Op('t').Op('Q')
                .Op(0x8a).Op(8).Raw([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
                .Op('(').Int(2).Op('t').Op('(').Int(int.MaxValue).Op('t').Op(0x89).Op('N')
            .Op('t').Reduce().Op('s').Stop();
        Refused<InvalidDataException>(p.Bytes(), [("data/0", new byte[16])], "storage '0'");
    }

    [Fact]
    public void LongOpcodeWithSixMegabytesOfDigitsIsRefusedWithoutParsing()
    {
        var p = new PickleWriter().Proto().Op('L').Raw(new string('9', 6_000_000) + "L\n").Stop();
        Refused<InvalidDataException>(p, "LONG");
    }

    [Fact]
    public void IntOpcodeWithHugeLiteralIsRefused()
    {
        var p = new PickleWriter().Proto().Op('I').Raw(new string('9', 6_000_000) + "\n").Stop();
        Refused<InvalidDataException>(p, "INT");
    }

    [Fact]
    public void Long4OfSixMegabytesIsRefusedWithoutDecoding()
    {
        var p = new PickleWriter().Proto().Op(0x8b).Raw(BitConverter.GetBytes(6_000_000)).Raw(new byte[6_000_000]).Stop();
        Refused<InvalidDataException>(p, "LONG4", "6000000 bytes");
    }

    [Fact]
    public void Long1WiderThan64BitsIsRefused()
    {
        var p = new PickleWriter().Proto().Op(0x8a).Op(9).Raw(new byte[9]).Stop();
        Refused<InvalidDataException>(p, "LONG1");
    }

    private static byte[] TensorWithLong1Offset(byte low, byte high) =>
        new PickleWriter().Proto().OrderedDict().Unicode("t")
            .Global("torch._utils", "_rebuild_tensor_v2").Op('(')
                .Op('(').Unicode("storage").Global("torch", "FloatStorage").Unicode("0").Unicode("cpu").Int(2).Op('t').Op('Q')
                .Op(0x8a).Op(2).Raw([low, high])
                .Op('(').Int(1).Op('t').Op('(').Int(1).Op('t').Op(0x89).Op('N')
            .Op('t').Reduce().Op('s').Stop().Bytes();

    [Fact]
    public void Long1IsDecodedAsTwosComplement()
    {
        // LONG1 0x01 0x00 is offset 1 (the second float); 0x00 0x80 is -32768, a negative offset.
        var t = PickleWriter.ReadCrafted(TensorWithLong1Offset(0x01, 0x00), ("data/0", BitConverter.GetBytes(0f).Concat(BitConverter.GetBytes(7f)).ToArray()))["t"];
        Assert.Equal(new float[] { 7f }, t.ToFloatArray());
        Refused<InvalidDataException>(TensorWithLong1Offset(0x00, 0x80), [("data/0", new byte[8])], "invalid size/stride/offset");
    }

    [Fact]
    public void ZipRecordClaimingTwoGigabytesIsRefusedBeforeAllocating()
    {
        var zip = PickleWriter.Zip(new PickleWriter().Proto().OrderedDict().Stop().Bytes());
        // Patch the uncompressed size of data.pkl in the central directory (signature PK\1\2, size at offset 24).
        int cd = IndexOf(zip, [0x50, 0x4b, 0x01, 0x02]);
        BitConverter.GetBytes(0x7fff_0000).CopyTo(zip, cd + 24);
        Bounded.Throws<InvalidDataException>(log, () => PyTorchCheckpoint.Read(new MemoryStream(zip), "crafted.bin"), "crafted.bin");
    }

    [Fact]
    public void OversizedPickleIsRefusedBeforeReading()
    {
        // A deflated data.pkl of 65 MiB of zeros: small on disk, over the 64 MiB bound once inflated.
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var s = zip.CreateEntry("archive/data.pkl", CompressionLevel.Optimal).Open();
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 65; i++) s.Write(zeros);
        }
        Bounded.Throws<InvalidDataException>(log, () => PyTorchCheckpoint.Read(new MemoryStream(ms.ToArray()), "crafted.bin"), "crafted.bin", "data.pkl");
    }

    [Fact]
    public void IndexNamingItselfIsRefusedForBin()
    {
        using var dir = new TempDir();
        string index = Path.Combine(dir, PyTorchCheckpoint.IndexFileName);
        File.WriteAllText(index, $$$"""{"weight_map":{"x":"{{{PyTorchCheckpoint.IndexFileName}}}"}}""");
        Bounded.Throws<InvalidDataException>(log, () => PyTorchCheckpoint.Read(index), index);
    }

    [Fact]
    public void IntegerTensorForAFloatWeightIsRefusedInABin()
    {
        using var dir = new TempDir();
        var p = new PickleWriter().Proto().OrderedDict().Unicode("classifier.bias")
            .Tensor("IntStorage", "0", 5, 0, [5], [1]).Op('s').Stop();
        string file = Path.Combine(dir, PyTorchCheckpoint.ModelFileName);
        File.WriteAllBytes(file, PickleWriter.Zip(p.Bytes(), ("data/0", new byte[20])));
        Bounded.Throws<CheckpointMismatchException>(log, () => BeitCheckpoint.ReadTensors(dir), file, "classifier.bias", "I32");
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        throw new InvalidOperationException("not found");
    }
}
