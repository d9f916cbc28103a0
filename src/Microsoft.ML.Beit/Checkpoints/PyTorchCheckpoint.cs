using System.IO.Compression;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// Reads PyTorch <c>torch.save</c> state dicts (<c>pytorch_model.bin</c>, the zip format of PyTorch ≥ 1.6) without
/// Python and without running anything from the file. The pickle inside goes through a restricted unpickler that
/// accepts only what a state dict needs, as PyTorch's <c>weights_only=True</c> loader: the tensor rebuild functions of
/// <c>torch._utils</c>, the <c>torch.*Storage</c> types and <c>collections.OrderedDict</c>. Any other global raises
/// <see cref="UnsafePickleException"/> naming it.
/// </summary>
internal static class PyTorchCheckpoint
{
    /// <summary>The single-file checkpoint name Hugging Face uses for PyTorch weights.</summary>
    public const string ModelFileName = "pytorch_model.bin";
    /// <summary>The index file of a sharded PyTorch checkpoint.</summary>
    public const string IndexFileName = "pytorch_model.bin.index.json";

    private static readonly Dictionary<string, TensorDType?> s_storageTypes = new()
    {
        ["torch.FloatStorage"] = TensorDType.F32,
        ["torch.HalfStorage"] = TensorDType.F16,
        ["torch.BFloat16Storage"] = TensorDType.BF16,
        ["torch.DoubleStorage"] = TensorDType.F64,
        ["torch.LongStorage"] = TensorDType.I64,
        ["torch.IntStorage"] = TensorDType.I32,
        ["torch.ByteStorage"] = TensorDType.U8,
        ["torch.CharStorage"] = TensorDType.I8,
        ["torch.BoolStorage"] = TensorDType.BOOL,
        // Safe to name, but no BEiT weight uses them: refused later with an unsupported-dtype message.
        ["torch.ShortStorage"] = null,
        ["torch.ComplexFloatStorage"] = null,
        ["torch.ComplexDoubleStorage"] = null,
    };

    /// <summary>Reads every tensor of a <c>pytorch_model.bin</c>, or of a sharded checkpoint when given its index JSON.</summary>
    /// <exception cref="UnsafePickleException">The pickle names a global or opcode a state dict never needs.</exception>
    /// <exception cref="InvalidDataException">The file is not a PyTorch zip checkpoint or is damaged; the message names the file.</exception>
    public static Dictionary<string, TensorData> Read(string path) =>
        path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase) ? ShardedCheckpoint.Read(path, ReadFile) : ReadFile(path);

    private static Dictionary<string, TensorData> ReadFile(string path)
    {
        using var stream = IO.BeitFiles.OpenReadData(path);
        return Read(stream, path);
    }

    /// <summary>Reads every tensor of a PyTorch zip checkpoint from a seekable stream.</summary>
    /// <param name="stream">The checkpoint bytes.</param>
    /// <param name="sourceName">Names the source in error messages.</param>
    public static Dictionary<string, TensorData> Read(Stream stream, string sourceName)
    {
        try
        {
            return ReadZip(stream, sourceName);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith($"'{sourceName}'", StringComparison.Ordinal))
        {
            // The zip reader's own errors (it reads the central directory lazily) name no file.
            throw new InvalidDataException($"'{sourceName}': damaged zip archive: {e.Message}", e);
        }
    }

    private static Dictionary<string, TensorData> ReadZip(Stream stream, string sourceName)
    {
        Span<byte> magic = stackalloc byte[4];
        long start = stream.Position;
        int got = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        stream.Position = start;
        if (got < 4 || magic[0] != (byte)'P' || magic[1] != (byte)'K')
        {
            string why = got >= 2 && magic[0] == 0x80
                ? "it is in the legacy torch.save format of PyTorch < 1.6, which is not supported; re-save it with a newer PyTorch or convert it to safetensors"
                : "it is not a PyTorch zip checkpoint";
            throw new InvalidDataException($"'{sourceName}': {why}.");
        }
        long archiveLength = stream.Length - start;
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{sourceName}': damaged zip archive: {e.Message}", e);
        }
        using (zip)
        {
            var pkl = zip.Entries.Where(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
                .OrderBy(e => e.FullName.Count(ch => ch == '/')).FirstOrDefault()
                ?? throw new InvalidDataException($"'{sourceName}': the zip has no data.pkl; not a torch.save checkpoint.");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            bool bigEndian = zip.GetEntry(prefix + "byteorder") is { Length: <= 16 } bo && ReadEntry(bo, sourceName, archiveLength) is var b
                && System.Text.Encoding.ASCII.GetString(b).Trim() == "big";

            var storages = new Dictionary<string, byte[]>();
            byte[] StorageBytes(StorageRef s)
            {
                if (storages.TryGetValue(s.Key, out var cached)) return cached;
                var entry = zip.GetEntry(prefix + "data/" + s.Key)
                    ?? throw new InvalidDataException($"'{sourceName}': storage '{s.Key}' is missing from the archive.");
                // The pickle's declared size is checked against the archive's record before the record is read.
                long need = (Int128)s.Numel * TensorData.ElementSize(s.DType) is var n && n <= long.MaxValue ? (long)n : long.MaxValue;
                if (entry.Length < need)
                    throw new InvalidDataException($"'{sourceName}': storage '{s.Key}' declares {s.Numel} {s.DType} elements ({need} bytes) but its archive record holds {entry.Length} bytes.");
                var bytes = ReadEntry(entry, sourceName, archiveLength);
                if (bigEndian) SwapBytes(bytes, TensorData.ElementSize(s.DType));
                storages[s.Key] = bytes;
                return bytes;
            }

            // Rebuilt tensors are copies; views that repeat elements (stride 0) could ask for far more than the file holds.
            long budget = checked(archiveLength * BeitLimits.MaxPickleMaterializeFactor + BeitLimits.PickleMaterializeSlackBytes);
            object? Rebuild(object?[] a, int minArgs)
            {
                if (a.Length < minArgs || a[0] is not StorageRef storage)
                    throw new InvalidDataException($"'{sourceName}': a tensor rebuild call has unexpected arguments.");
                long offset = AsLong(a[1], sourceName);
                long[] size = AsLongs(a[2], sourceName);
                long[] stride = AsLongs(a[3], sourceName);
                return BuildTensor(storage, StorageBytes(storage), offset, size, stride, sourceName, ref budget);
            }

            var callables = new Dictionary<string, Func<object?[], object?>>
            {
                ["collections.OrderedDict"] = a => a.Length == 0
                    ? new RestrictedUnpickler.PickleDict()
                    : throw new InvalidDataException($"'{sourceName}': OrderedDict with arguments is not supported."),
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                ["torch._utils._rebuild_tensor_v2"] = a => Rebuild(a, 4),
                // (storage, storage_offset, size, stride): PyTorch < 1.0.
                ["torch._utils._rebuild_tensor"] = a => Rebuild(a, 4),
                // (data, requires_grad, backward_hooks[, state]): nn.Parameter around a rebuilt tensor.
                ["torch._utils._rebuild_parameter"] = a => a.Length >= 1 && a[0] is TensorData t ? t : throw new InvalidDataException($"'{sourceName}': bad _rebuild_parameter call."),
                ["torch._utils._rebuild_parameter_with_state"] = a => a.Length >= 1 && a[0] is TensorData t ? t : throw new InvalidDataException($"'{sourceName}': bad _rebuild_parameter_with_state call."),
            };

            object? PersistentLoad(object? pid)
            {
                // ('storage', storage_type, key, location, numel)
                if (pid is not object?[] { Length: >= 5 } t || t[0] as string != "storage" || t[1] is not RestrictedUnpickler.Global type || t[2] is not string key)
                    throw new InvalidDataException($"'{sourceName}': unsupported persistent id {Describe(pid)}.");
                if (!s_storageTypes.TryGetValue(type.FullName, out var dtype) || dtype is null)
                    throw new InvalidDataException($"'{sourceName}': tensors of storage type {type.FullName} are not supported.");
                long numel = AsLong(t[4], sourceName);
                if (numel < 0) throw new InvalidDataException($"'{sourceName}': storage '{key}' has a negative size.");
                return new StorageRef(dtype.Value, key, numel);
            }

            if (pkl.Length > BeitLimits.MaxPickleBytes)
                throw new InvalidDataException($"'{sourceName}': data.pkl is {pkl.Length} bytes; at most {BeitLimits.MaxPickleBytes} are accepted.");
            var data = ReadEntry(pkl, sourceName, archiveLength);
            var unpickler = new RestrictedUnpickler(data, sourceName, callables, s_storageTypes.Keys.ToHashSet(), PersistentLoad);
            var root = unpickler.Load();
            if (root is not RestrictedUnpickler.PickleDict dict)
                throw new InvalidDataException($"'{sourceName}': the pickle holds a {Describe(root)}, not a state dict.");
            // Training checkpoints (timm, microsoft/unilm) nest the state dict under "model" (or mmseg's "state_dict").
            foreach (var key in new[] { "model", "state_dict" })
                if (dict.TryGetValue(key, out var nested) && nested is RestrictedUnpickler.PickleDict inner) { dict = inner; break; }
            var result = new Dictionary<string, TensorData>(dict.Count);
            foreach (var (k, v) in dict)
            {
                if (k is not string name || v is not TensorData tensor)
                    throw new InvalidDataException($"'{sourceName}': entry {Describe(k)} is not a named tensor; not a flat state dict (is it a training checkpoint with nested 'model'/'optimizer' entries?).");
                result[name] = tensor;
            }
            return result;
        }
    }

    private sealed record StorageRef(TensorDType DType, string Key, long Numel);

    private static TensorData BuildTensor(StorageRef storage, byte[] bytes, long offset, long[] size, long[] stride, string source, ref long budget)
    {
        try
        {
            return BuildTensorChecked(storage, bytes, offset, size, stride, source, ref budget);
        }
        catch (OverflowException e)
        {
            throw new InvalidDataException($"'{source}': a tensor of storage '{storage.Key}' has sizes or strides that overflow.", e);
        }
    }

    private static TensorData BuildTensorChecked(StorageRef storage, byte[] bytes, long offset, long[] size, long[] stride, string source, ref long budget)
    {
        if (size.Length != stride.Length || size.Length > BeitLimits.MaxTensorRank || size.Any(d => d < 0) || stride.Any(s => s < 0) || offset < 0)
            throw new InvalidDataException($"'{source}': a tensor of storage '{storage.Key}' has an invalid size/stride/offset.");
        int es = TensorData.ElementSize(storage.DType);
        long count = size.Aggregate(1L, (a, d) => checked(a * d));
        if (count > BeitLimits.MaxTensorElements)
            throw new InvalidDataException($"'{source}': a tensor of storage '{storage.Key}' has {count} elements; at most {BeitLimits.MaxTensorElements} are accepted.");
        long byteCount = checked(count * es);
        if (count > 0)
        {
            // Every element the view reads must lie inside the storage, checked before anything is allocated.
            long last = checked(offset + size.Zip(stride).Sum(p => checked((p.First - 1) * p.Second)));
            if (last >= storage.Numel || checked((last + 1) * es) > bytes.LongLength)
                throw new InvalidDataException($"'{source}': a tensor reaches element {last} of storage '{storage.Key}', which holds {storage.Numel}.");
        }
        if (byteCount > budget)
            throw new InvalidDataException($"'{source}': a tensor of storage '{storage.Key}' ({storage.DType}[{string.Join(",", size)}], strides [{string.Join(",", stride)}]) " +
                                           $"would take the tensors rebuilt from this file past {BeitLimits.MaxPickleMaterializeFactor}× its size; refused.");
        budget -= byteCount;
        var data = new byte[byteCount];
        if (count == 0) return new TensorData(storage.DType, size, data);

        bool contiguous = true;
        long expect = 1;
        for (int d = size.Length - 1; d >= 0; d--)
        {
            if (size[d] != 1 && stride[d] != expect) contiguous = false;
            expect *= size[d];
        }
        if (contiguous)
        {
            Buffer.BlockCopy(bytes, checked((int)(offset * es)), data, 0, data.Length);
            return new TensorData(storage.DType, size, data);
        }
        // A view with its own strides: gather in row-major order.
        var index = new long[size.Length];
        for (long i = 0; i < count; i++)
        {
            long src = offset;
            for (int d = 0; d < size.Length; d++) src += index[d] * stride[d];
            Buffer.BlockCopy(bytes, checked((int)(src * es)), data, checked((int)(i * es)), es);
            for (int d = size.Length - 1; d >= 0; d--)
            {
                if (++index[d] < size[d]) break;
                index[d] = 0;
            }
        }
        return new TensorData(storage.DType, size, data);
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, string source, long archiveLength)
    {
        // The sizes in the zip directory are the file's claims: a record can neither be larger than the file when stored
        // (torch.save stores, never compresses) nor inflate past deflate's maximum ratio.
        if (entry.Length > Array.MaxLength || entry.CompressedLength > archiveLength
            || (entry.Length > entry.CompressedLength && entry.Length / BeitLimits.MaxDeflateRatio > entry.CompressedLength))
            throw new InvalidDataException($"'{source}': archive entry '{entry.FullName}' claims {entry.Length} bytes from {entry.CompressedLength} in a {archiveLength}-byte file.");
        var buffer = new byte[entry.Length];
        int read;
        try
        {
            using var s = entry.Open();
            read = s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        }
        catch (InvalidDataException e)
        {
            // The zip reader's own message (a corrupt local header, bad deflate data, a CRC mismatch) names no file.
            throw new InvalidDataException($"'{source}': archive entry '{entry.FullName}' is damaged: {e.Message}", e);
        }
        if (read != buffer.Length)
            throw new InvalidDataException($"'{source}': archive entry '{entry.FullName}' is truncated.");
        return buffer;
    }

    private static void SwapBytes(byte[] bytes, int elementSize)
    {
        if (elementSize == 1) return;
        for (int i = 0; i + elementSize <= bytes.Length; i += elementSize) Array.Reverse(bytes, i, elementSize);
    }

    private static long AsLong(object? o, string source) => o switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidDataException($"'{source}': expected an integer, found {Describe(o)}."),
    };

    private static long[] AsLongs(object? o, string source) => o switch
    {
        object?[] t => t.Select(x => AsLong(x, source)).ToArray(),
        List<object?> l => l.Select(x => AsLong(x, source)).ToArray(),
        _ => throw new InvalidDataException($"'{source}': expected a tuple of integers, found {Describe(o)}."),
    };

    private static string Describe(object? o) => RestrictedUnpickler.Describe(o);
}
