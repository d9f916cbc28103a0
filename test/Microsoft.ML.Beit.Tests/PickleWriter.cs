using System.IO.Compression;
using System.Text;
using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests;

/// <summary>Writes pickle opcodes by hand, to craft test files without Python.</summary>
internal sealed class PickleWriter
{
    private readonly List<byte> _b = new();
    public byte[] Bytes() => _b.ToArray();
    public PickleWriter Op(int op) { _b.Add((byte)op); return this; }
    public PickleWriter Op(char op) => Op((int)op);
    public PickleWriter Raw(string s) { _b.AddRange(Encoding.ASCII.GetBytes(s)); return this; }
    public PickleWriter Raw(byte[] bytes) { _b.AddRange(bytes); return this; }
    public PickleWriter Proto(int v = 2) => Op(0x80).Op(v);
    public PickleWriter Global(string module, string name) => Op('c').Raw(module + "\n" + name + "\n");
    public PickleWriter Unicode(string s)
    {
        var u = Encoding.UTF8.GetBytes(s);
        Op('X');
        _b.AddRange(BitConverter.GetBytes(u.Length));
        _b.AddRange(u);
        return this;
    }
    public PickleWriter Int(int v) { Op('J'); _b.AddRange(BitConverter.GetBytes(v)); return this; }
    public PickleWriter Tuple1() => Op(0x85);
    public PickleWriter Tuple2() => Op(0x86);
    public PickleWriter Reduce() => Op('R');
    public PickleWriter Stop() => Op('.');
    /// <summary>BINPUT: stores the top of the stack in memo slot <paramref name="slot"/>.</summary>
    public PickleWriter Put(byte slot) => Op('q').Op(slot);
    /// <summary>BINGET: pushes memo slot <paramref name="slot"/>.</summary>
    public PickleWriter Get(byte slot) => Op('h').Op(slot);

    /// <summary>The opening of a state dict: an empty OrderedDict.</summary>
    public PickleWriter OrderedDict() => Global("collections", "OrderedDict").Op(')').Reduce();

    /// <summary>
    /// Pushes <c>_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())</c> for storage <paramref name="key"/>
    /// of <paramref name="numel"/> elements of <paramref name="storageType"/>.
    /// </summary>
    public PickleWriter Tensor(string storageType, string key, int numel, int offset, int[] size, int[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Op('(')
            .Op('(').Unicode("storage").Global("torch", storageType).Unicode(key).Unicode("cpu").Int(numel).Op('t').Op('Q')
            .Int(offset);
        Op('('); foreach (var s in size) Int(s); Op('t');
        Op('('); foreach (var s in stride) Int(s); Op('t');
        return Op(0x89).OrderedDict().Op('t').Reduce();
    }

    /// <summary>A torch.save zip: <c>archive/data.pkl</c> plus the given records, stored uncompressed as PyTorch does.</summary>
    public static byte[] Zip(byte[] pickle, params (string Name, byte[] Data)[] records)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data) in records.Prepend(("data.pkl", pickle)))
            {
                using var s = zip.CreateEntry("archive/" + name, CompressionLevel.NoCompression).Open();
                s.Write(data);
            }
        }
        return ms.ToArray();
    }

    /// <summary>Reads a crafted checkpoint as <c>crafted.bin</c>.</summary>
    public static Dictionary<string, TensorData> ReadCrafted(byte[] pickle, params (string Name, byte[] Data)[] records) =>
        PyTorchCheckpoint.Read(new MemoryStream(Zip(pickle, records)), "crafted.bin");
}
