using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c> per tensor, optional <c>__metadata__</c>), then raw data.
/// Also reads sharded checkpoints through <c>model.safetensors.index.json</c>.
/// </summary>
public static class SafeTensors
{
    /// <summary>The single-file checkpoint name Hugging Face uses.</summary>
    public const string ModelFileName = "model.safetensors";
    /// <summary>The index file of a sharded checkpoint.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>Reads every tensor of a safetensors file, or of a sharded checkpoint when given its index JSON.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or its header is invalid; the message names the file.</exception>
    public static Dictionary<string, TensorData> Read(string path)
    {
        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return ShardedCheckpoint.Read(path, Read);
        using var stream = File.OpenRead(path);
        try
        {
            return Read(stream, out _);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>Reads every tensor from a safetensors stream, returning the <c>__metadata__</c> map too.</summary>
    public static Dictionary<string, TensorData> Read(Stream stream, out Dictionary<string, string> metadata)
    {
        var (headerLen, entries) = ReadHeader(stream, out metadata);
        long dataStart = 8 + headerLen;
        var result = new Dictionary<string, TensorData>(entries.Count);
        bool canSeek = stream.CanSeek;
        long position = 0;
        foreach (var e in entries.OrderBy(e => e.Begin))
        {
            if (canSeek)
            {
                stream.Position = dataStart + e.Begin;
            }
            else
            {
                if (e.Begin < position) throw new InvalidDataException($"tensor '{e.Name}' overlaps another tensor.");
                stream.ReadExactly(new byte[e.Begin - position]);
            }
            var data = new byte[e.End - e.Begin];
            if (stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false) != data.Length)
                throw new InvalidDataException($"safetensors data is truncated in tensor '{e.Name}'.");
            position = e.End;
            result[e.Name] = new TensorData(e.DType, e.Shape, data);
        }
        return result;
    }

    /// <summary>
    /// The dtype and shape of every tensor of a safetensors file (or of a sharded checkpoint's index, whose shard file names
    /// are added to <paramref name="shardsRead"/>), from the JSON headers alone: no tensor data is read. Checks that
    /// each tensor's bytes lie within the file, so a truncated file is reported as <see cref="Read(string)"/> would.
    /// </summary>
    internal static Dictionary<string, (TensorDType DType, long[] Shape)> ReadShapes(string path, List<string>? shardsRead = null)
    {
        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
            return ShardedCheckpoint.Read(path, shard => ReadShapes(shard), shardsRead);
        using var stream = File.OpenRead(path);
        try
        {
            var (headerLen, entries) = ReadHeader(stream, out _);
            long dataLength = stream.Length - 8 - headerLen;
            var result = new Dictionary<string, (TensorDType DType, long[] Shape)>(entries.Count);
            foreach (var e in entries)
            {
                if (e.End > dataLength) throw new InvalidDataException($"safetensors data is truncated in tensor '{e.Name}'.");
                result[e.Name] = (e.DType, e.Shape);
            }
            return result;
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Parses the 8-byte length and the JSON header, leaving <paramref name="stream"/> at the start of the data; checks
    /// each entry's dtype, shape and that its <c>data_offsets</c> span exactly the bytes its shape needs.
    /// </summary>
    private static (long HeaderLength, List<(string Name, TensorDType DType, long[] Shape, long Begin, long End)> Entries) ReadHeader(
        Stream stream, out Dictionary<string, string> metadata)
    {
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) != 8)
            throw new InvalidDataException("safetensors file is shorter than its 8-byte header length.");
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 1 || headerLen > MaxHeaderBytes)
            throw new InvalidDataException($"safetensors header length {headerLen} is invalid; not a safetensors file?");
        var headerBytes = new byte[headerLen];
        if (stream.ReadAtLeast(headerBytes, (int)headerLen, throwOnEndOfStream: false) != headerLen)
            throw new InvalidDataException("safetensors header is truncated.");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new InvalidDataException("safetensors header is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException("safetensors header is not valid JSON: " + e.Message, e);
        }

        metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, TensorDType DType, long[] Shape, long Begin, long End)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            if (node is not JsonObject t) throw new InvalidDataException($"safetensors entry '{name}' is not an object.");
            var dtypeName = t["dtype"]?.GetValue<string>() ?? throw new InvalidDataException($"tensor '{name}' has no dtype.");
            if (!Enum.TryParse<TensorDType>(dtypeName, out var dtype))
                throw new InvalidDataException($"tensor '{name}' has unsupported dtype '{dtypeName}'.");
            var shape = (t["shape"] as JsonArray)?.Select(x => x!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"tensor '{name}' has no shape.");
            if (shape.Any(d => d < 0)) throw new InvalidDataException($"tensor '{name}' has a negative dimension.");
            var offs = (t["data_offsets"] as JsonArray)?.Select(x => x!.GetValue<long>()).ToArray();
            if (offs is not { Length: 2 } || offs[0] < 0 || offs[1] < offs[0])
                throw new InvalidDataException($"tensor '{name}' has invalid data_offsets.");
            long expected;
            try
            {
                expected = checked(shape.Aggregate(1L, (a, d) => checked(a * d)) * TensorData.ElementSize(dtype));
            }
            catch (OverflowException)
            {
                throw new InvalidDataException($"tensor '{name}' {dtype}[{string.Join(",", shape)}] is too large.");
            }
            if (offs[1] - offs[0] != expected)
                throw new InvalidDataException($"tensor '{name}' {dtype}[{string.Join(",", shape)}] needs {expected} bytes but its offsets span {offs[1] - offs[0]}.");
            entries.Add((name, dtype, shape, offs[0], offs[1]));
        }
        return (headerLen, entries);
    }

    /// <summary>
    /// Writes tensors to <paramref name="path"/> in safetensors format, sorted by name, atomically
    /// (a temporary file renamed into place, so a failure leaves nothing half-written).
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        string tmp = path + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                Write(fs, tensors, metadata);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Writes tensors to a stream in safetensors format, sorted by name.</summary>
    public static void Write(Stream stream, IReadOnlyDictionary<string, TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) meta[k] = v;
            header["__metadata__"] = meta;
        }
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        long offset = 0;
        foreach (var name in names)
        {
            var t = tensors[name];
            header[name] = new JsonObject
            {
                ["dtype"] = t.DType.ToString(),
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode?)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.LongLength),
            };
            offset += t.Data.LongLength;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Pad with spaces to 8 bytes, as the reference writer does, so data stays aligned.
        int pad = (8 - headerBytes.Length % 8) % 8;
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, headerBytes.Length + pad);
        stream.Write(len);
        stream.Write(headerBytes);
        for (int i = 0; i < pad; i++) stream.WriteByte((byte)' ');
        foreach (var name in names) stream.Write(tensors[name].Data);
    }
}
