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

    private static readonly Dictionary<string, TensorDType> s_dtypes = Enum.GetValues<TensorDType>().ToDictionary(d => d.ToString());

    /// <summary>Reads every tensor of a safetensors file, or of a sharded checkpoint when given its index JSON.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or its header is invalid; the message names the file.</exception>
    public static Dictionary<string, TensorData> Read(string path) =>
        path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase) ? ShardedCheckpoint.Read(path, ReadFile) : ReadFile(path);

    private static Dictionary<string, TensorData> ReadFile(string path) => WithPath(path, stream => Read(stream, out _));

    /// <summary>
    /// The dtype and shape of every tensor of a safetensors file (or of a sharded checkpoint's index, whose shard file names
    /// are added to <paramref name="shardsRead"/>), from the JSON headers alone: no tensor data is read. The header and the
    /// file length are validated as <see cref="Read(string)"/> does, so a truncated file is reported the same way.
    /// </summary>
    internal static Dictionary<string, (TensorDType DType, long[] Shape)> ReadShapes(string path, List<string>? shardsRead = null) =>
        path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)
            ? ShardedCheckpoint.Read(path, ReadFileShapes, shardsRead)
            : ReadFileShapes(path);

    private static Dictionary<string, (TensorDType DType, long[] Shape)> ReadFileShapes(string path) => WithPath(path, stream =>
    {
        var (entries, covered) = ReadHeader(stream, out _);
        CheckDataLength(stream.Length - stream.Position, covered);
        return entries.ToDictionary(e => e.Name, e => (e.DType, e.Shape));
    });

    private static T WithPath<T>(string path, Func<Stream, T> read)
    {
        using var stream = IO.BeitFiles.OpenReadData(path);
        try
        {
            return read(stream);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Reads every tensor from a safetensors stream, returning the <c>__metadata__</c> map too. The header is validated
    /// as the format requires before any tensor is allocated: known dtype names, non-negative shapes whose byte size
    /// matches the offsets, and offsets that tile the data buffer exactly (contiguous, no overlap, no hole, no tail),
    /// string-only metadata and no duplicate keys.
    /// </summary>
    /// <exception cref="InvalidDataException">The data is not a valid safetensors file.</exception>
    public static Dictionary<string, TensorData> Read(Stream stream, out Dictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (entries, covered) = ReadHeader(stream, out metadata);

        // A stream that cannot seek is copied first, but never past what the header declares (plus one byte to see a tail).
        Stream data = stream;
        if (!stream.CanSeek)
        {
            var buffer = new MemoryStream();
            CopyAtMost(stream, buffer, checked(covered + 1));
            buffer.Position = 0;
            data = buffer;
        }
        CheckDataLength(data.Length - data.Position, covered);

        var result = new Dictionary<string, TensorData>(entries.Count);
        foreach (var e in entries)
        {
            var bytes = new byte[e.End - e.Begin];
            data.ReadExactly(bytes);
            result[e.Name] = new TensorData(e.DType, e.Shape, bytes);
        }
        return result;
    }

    private static void CheckDataLength(long dataLen, long covered)
    {
        if (dataLen != covered)
            throw new InvalidDataException(dataLen < covered
                ? $"safetensors data is truncated: the header declares {covered} bytes, the file holds {dataLen}."
                : $"safetensors data has {dataLen - covered} bytes that no tensor covers.");
    }

    /// <summary>
    /// Reads the 8-byte length and the JSON header, leaving <paramref name="stream"/> at the start of the data, and returns
    /// the entries sorted by offset with the number of data bytes they cover.
    /// </summary>
    private static (List<Entry> Entries, long Covered) ReadHeader(Stream stream, out Dictionary<string, string> metadata)
    {
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) != 8)
            throw new InvalidDataException("safetensors file is shorter than its 8-byte header length.");
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 1 || headerLen > BeitLimits.MaxSafeTensorsHeaderBytes)
            throw new InvalidDataException($"safetensors header length {headerLen} is invalid; not a safetensors file?");
        if (stream.CanSeek && headerLen > stream.Length - stream.Position)
            throw new InvalidDataException($"safetensors header length {headerLen} runs past the end of the file ({stream.Length} bytes).");
        var headerBytes = new byte[headerLen];
        if (stream.ReadAtLeast(headerBytes, (int)headerLen, throwOnEndOfStream: false) != headerLen)
            throw new InvalidDataException("safetensors header is truncated.");
        var (entries, meta) = ParseHeader(UntrustedJson.ParseObject(headerBytes, "safetensors header"));
        metadata = meta;

        // The format requires the offsets to tile the data buffer: sorted by offset, each tensor starts where the
        // previous one ends (huggingface/safetensors, safetensors/src/tensor.rs, Metadata::validate).
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long covered = 0;
        foreach (var e in entries)
        {
            if (e.Begin != covered)
                throw new InvalidDataException(e.Begin < covered
                    ? $"tensor '{e.Name}' overlaps the tensor before it (data_offsets [{e.Begin}, {e.End}], previous ends at {covered})."
                    : $"tensor '{e.Name}' leaves a hole in the data (data_offsets [{e.Begin}, {e.End}], previous ends at {covered}).");
            covered = e.End;
        }
        return (entries, covered);
    }

    private readonly record struct Entry(string Name, TensorDType DType, long[] Shape, long Begin, long End);

    private static (List<Entry>, Dictionary<string, string>) ParseHeader(JsonObject header)
    {
        var metadata = new Dictionary<string, string>();
        var entries = new List<Entry>(header.Count);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is null) continue;
                if (node is not JsonObject meta) throw new InvalidDataException("safetensors __metadata__ is not an object.");
                foreach (var (k, v) in meta)
                    metadata[k] = UntrustedJson.Kind(v) == JsonValueKind.String ? v!.GetValue<string>()
                        : throw new InvalidDataException($"safetensors __metadata__ value '{k}' is not a string.");
                continue;
            }
            if (node is not JsonObject t) throw new InvalidDataException($"safetensors entry '{name}' is not an object.");
            var dtypeNode = t["dtype"];
            if (UntrustedJson.Kind(dtypeNode) != JsonValueKind.String)
                throw new InvalidDataException($"tensor '{name}' has no dtype string.");
            string dtypeName = dtypeNode!.GetValue<string>();
            if (!s_dtypes.TryGetValue(dtypeName, out var dtype))
                throw new InvalidDataException($"tensor '{name}' has unsupported dtype '{dtypeName}'.");
            if (t["shape"] is not JsonArray shapeNode) throw new InvalidDataException($"tensor '{name}' has no shape array.");
            if (shapeNode.Count > BeitLimits.MaxTensorRank)
                throw new InvalidDataException($"tensor '{name}' has {shapeNode.Count} dimensions; at most {BeitLimits.MaxTensorRank} are accepted.");
            var shape = new long[shapeNode.Count];
            for (int i = 0; i < shape.Length; i++) shape[i] = NonNegativeLong(shapeNode[i], name, "shape");
            if (t["data_offsets"] is not JsonArray { Count: 2 } offs)
                throw new InvalidDataException($"tensor '{name}' has no [begin, end] data_offsets.");
            long begin = NonNegativeLong(offs[0], name, "data_offsets"), end = NonNegativeLong(offs[1], name, "data_offsets");
            if (end < begin) throw new InvalidDataException($"tensor '{name}' has data_offsets [{begin}, {end}] that end before they begin.");
            long bytes = ByteSize(dtype, shape, name);
            if (end - begin != bytes)
                throw new InvalidDataException($"tensor '{name}' {dtype}[{string.Join(",", shape)}] needs {bytes} bytes but its offsets span {end - begin}.");
            entries.Add(new Entry(name, dtype, shape, begin, end));
        }
        return (entries, metadata);
    }

    private static long NonNegativeLong(JsonNode? node, string tensor, string field)
    {
        if (UntrustedJson.Kind(node) == JsonValueKind.Number && node is JsonValue v && v.TryGetValue<long>(out long n) && n >= 0) return n;
        throw new InvalidDataException($"tensor '{tensor}' has {field} entry {node?.ToJsonString() ?? "null"}, not a non-negative integer.");
    }

    /// <summary>The byte size of a tensor, refusing element counts that overflow or exceed <see cref="BeitLimits.MaxTensorElements"/>.</summary>
    private static long ByteSize(TensorDType dtype, long[] shape, string name)
    {
        long count = 1;
        foreach (long d in shape)
        {
            // Checked in 128 bits so that a product wrapping around to 0 (for example 2^32 · 2^32) cannot slip through.
            var wide = (Int128)count * d;
            if (wide > BeitLimits.MaxTensorElements)
                throw new InvalidDataException($"tensor '{name}' shape [{string.Join(",", shape)}] has more than {BeitLimits.MaxTensorElements} elements.");
            count = (long)wide;
        }
        return count * TensorData.ElementSize(dtype);
    }

    private static void CopyAtMost(Stream from, Stream to, long max)
    {
        var chunk = new byte[81920];
        while (max > 0)
        {
            int n = from.Read(chunk, 0, (int)Math.Min(chunk.Length, max));
            if (n == 0) break;
            to.Write(chunk, 0, n);
            max -= n;
        }
    }

    /// <summary>
    /// Writes tensors to <paramref name="path"/> in safetensors format, sorted by name, atomically
    /// (<see cref="IO.AtomicFile"/>: a failure leaves nothing half-written).
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        IO.AtomicFile.Write(path, tmp => WriteFile(tmp, tensors, metadata));

    /// <summary>Writes a new safetensors file at <paramref name="path"/> (not atomically: the callers write a temporary path).</summary>
    internal static void WriteFile(string path, IReadOnlyDictionary<string, TensorData> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        Write(fs, tensors, metadata);
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
