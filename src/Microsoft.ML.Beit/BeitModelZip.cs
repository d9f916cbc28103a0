using System.IO.Compression;
using System.IO.Hashing;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit;

/// <summary>
/// Loads a <c>model.zip</c> that may come from anyone: the safe way to call <c>mlContext.Model.Load</c>. The zip is
/// checked before ML.NET reads it — a regular file; at most <see cref="MaxEntries"/> entries with relative names; each
/// entry's declared size within <see cref="MaxEntryBytes"/> (and the sum within <see cref="MaxTotalBytes"/>) and
/// compressed no more than <see cref="MaxCompressionRatio"/> to one; every entry inflates to exactly its declared size
/// with the CRC-32 the zip records — so a zip bomb is refused from its directory in milliseconds, and a flipped bit is
/// an error instead of silently different scores. ML.NET's temporary copy of each ONNX model goes to this process's
/// temporary folder, and is deleted when the load fails. Any failure is one <see cref="InvalidDataException"/> that
/// names the file and, for a bad model inside it, the stage.
/// </summary>
public static class BeitModelZip
{
    /// <summary>
    /// The largest entry, 2 GiB − 1: ML.NET reads an embedded ONNX model into one byte array, and protobuf (the ONNX
    /// format) cannot encode a message of 2 GiB or more. BEiT-large in fp32 is about 1.2 GB.
    /// </summary>
    public const long MaxEntryBytes = int.MaxValue;

    /// <summary>The most bytes all entries together may inflate to: 4 GiB (e.g. a classifier plus a segmenter of BEiT-large).</summary>
    public const long MaxTotalBytes = 4L << 30;

    /// <summary>The most entries a model.zip may hold (a pipeline stage writes a handful).</summary>
    public const int MaxEntries = 10_000;

    /// <summary>
    /// How much an entry larger than 16 MiB may shrink when compressed: 100 to one. Trained weights hardly compress
    /// (a BEiT ONNX deflates by about 10 %); a run of zeros deflates about 1000 to one, the shape of a zip bomb.
    /// </summary>
    public const int MaxCompressionRatio = 100;

    private const long RatioExemptBytes = 16L << 20;

    /// <summary>Checks <paramref name="path"/> as described above, then loads it with <c>mlContext.Model.Load</c>.</summary>
    /// <param name="mlContext">The context to load with (its <c>TempFilePath</c> is pointed at this process's temporary folder during the load, then restored).</param>
    /// <param name="path">The model.zip.</param>
    /// <param name="inputSchema">The schema the model was saved with.</param>
    /// <returns>The model. Dispose it (if it is <see cref="IDisposable"/>) to release ONNX Runtime and the extracted ONNX files.</returns>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid or safe model.zip; the message names it and says why.</exception>
    public static ITransformer Load(MLContext mlContext, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrEmpty(path);
        // One open file for the checks and the load, so the file cannot be swapped in between.
        using var file = Open(path);
        var onnxEntries = Validate(path, file);
        file.Position = 0;
        string previous = mlContext.TempFilePath;
        string folder = BeitTempFiles.NewFolder("load");
        mlContext.TempFilePath = folder;
        try
        {
            return mlContext.Model.Load(file, out inputSchema);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            BeitTempFiles.DeleteQuietly(folder);
            LastFailedLoadFolder = folder;
            throw Explain(path, file, e, onnxEntries);
        }
        finally
        {
            mlContext.TempFilePath = previous;
        }
    }

    /// <summary>The temporary folder of this thread's last failed load (deleted by then; the tests check).</summary>
    [ThreadStatic]
    internal static string? LastFailedLoadFolder;

    private static FileStream Open(string path)
    {
        try
        {
            return BeitFiles.OpenRead(path, MaxTotalBytes);
        }
        catch (BeitFiles.RefusedException e)
        {
            throw Invalid(path, e.Message + ".", e);
        }
    }

    /// <summary>Checks the zip file at <paramref name="path"/> (see <see cref="Validate(string, Stream)"/>).</summary>
    internal static List<string> Validate(string path)
    {
        using var file = Open(path);
        return Validate(path, file);
    }

    /// <summary>Checks the zip's structure, sizes and CRCs; returns the names of the entries holding ONNX models.</summary>
    internal static List<string> Validate(string path, Stream file)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw Invalid(path, $"it is not a zip archive, or it is truncated ({e.Message})", e);
        }
        using (zip)
        {
            try
            {
                return CheckEntries(path, zip);
            }
            catch (InvalidDataException e) when (!e.Message.StartsWith($"Model '{path}'", StringComparison.Ordinal))
            {
                // ZipArchive reads the central directory lazily: its errors surface here.
                throw Invalid(path, $"the zip directory is corrupt ({e.Message})", e);
            }
        }
    }

    private static List<string> CheckEntries(string path, ZipArchive zip)
    {
        if (zip.Entries.Count > MaxEntries) throw Invalid(path, $"it has {zip.Entries.Count:N0} entries, more than {MaxEntries:N0}.");
        long total = 0;
        var onnx = new List<string>();
        foreach (var entry in zip.Entries)
        {
            string name = entry.FullName;
            if (name.Length == 0 || name.StartsWith('/') || name.StartsWith('\\') || name.Contains(':') ||
                name.Split('/', '\\').Any(part => part == ".."))
                throw Invalid(path, $"entry '{name}' is not a relative path inside the archive.");
            if (entry.Length < 0 || entry.Length > MaxEntryBytes)
                throw Invalid(path, $"entry '{name}' declares {entry.Length:N0} bytes, more than the limit of {MaxEntryBytes:N0} (BeitModelZip.MaxEntryBytes).");
            total += entry.Length;
            if (total > MaxTotalBytes)
                throw Invalid(path, $"its entries declare more than {MaxTotalBytes:N0} bytes in all (BeitModelZip.MaxTotalBytes).");
            if (entry.Length > RatioExemptBytes && entry.Length / Math.Max(1, entry.CompressedLength) > MaxCompressionRatio)
                throw Invalid(path, $"entry '{name}' inflates {entry.CompressedLength:N0} bytes to {entry.Length:N0}, more than {MaxCompressionRatio} to one (BeitModelZip.MaxCompressionRatio): a zip bomb.");
            if (name.EndsWith("/OnnxModel", StringComparison.Ordinal) || name == "OnnxModel") onnx.Add(name);
        }
        foreach (var entry in zip.Entries) CheckContent(path, entry);
        return onnx;
    }

    /// <summary>Inflates an entry, never past its declared size, and compares its length and CRC-32 with the directory's.</summary>
    private static void CheckContent(string path, ZipArchiveEntry entry)
    {
        var crc = new Crc32();
        long read = 0;
        var buffer = new byte[1 << 16];
        try
        {
            using var stream = entry.Open();
            int n;
            // Never asks for more than one byte past the declared size, so a lying entry costs nothing extra.
            while (read <= entry.Length && (n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, entry.Length - read + 1))) > 0)
            {
                read += n;
                crc.Append(buffer.AsSpan(0, n));
            }
        }
        catch (InvalidDataException e)
        {
            throw Invalid(path, $"entry '{entry.FullName}' is corrupt ({e.Message})", e);
        }
        if (read > entry.Length)
            throw Invalid(path, $"entry '{entry.FullName}' inflates to more than the {entry.Length:N0} bytes it declares.");
        if (read != entry.Length)
            throw Invalid(path, $"entry '{entry.FullName}' inflates to {read:N0} bytes, not the {entry.Length:N0} it declares (the file is truncated or corrupt).");
        if (crc.GetCurrentHashAsUInt32() != entry.Crc32)
            throw Invalid(path, $"entry '{entry.FullName}' fails its CRC-32 check (the file is corrupt).");
    }

    /// <summary>One clear error for a zip that passed <see cref="Validate(string, Stream)"/> but that ML.NET could not load.</summary>
    private static InvalidDataException Explain(string path, Stream file, Exception e, List<string> onnxEntries)
    {
        var innermost = e;
        while (innermost.InnerException != null) innermost = innermost.InnerException;
        // Name the stage: the first embedded ONNX model that is not valid protobuf, or, when ONNX Runtime refused one,
        // all of them (ML.NET's message does not say which stage it was loading).
        string? stage = null;
        if (onnxEntries.Count > 0)
        {
            file.Position = 0;
            stage = FindInvalidOnnx(file, onnxEntries) is { } bad ? $"stage '{Stage(bad.Entry)}' (ApplyOnnxModel): invalid ONNX model: {bad.Problem}" : null;
            // ML.NET's message does not say which stage failed, but its stack does when it was the ONNX transformer.
            if (stage == null && (innermost.GetType().Name.StartsWith("OnnxRuntime", StringComparison.Ordinal) || e.ToString().Contains(".Onnx", StringComparison.Ordinal)))
                stage = $"stage{(onnxEntries.Count > 1 ? "s" : "")} {string.Join(", ", onnxEntries.Select(n => $"'{Stage(n)}'"))} (ApplyOnnxModel): invalid ONNX model: {innermost.Message}";
        }
        return Invalid(path, stage ?? $"{innermost.GetType().Name}: {innermost.Message}", e);
    }

    private static (string Entry, string Problem)? FindInvalidOnnx(Stream file, List<string> onnxEntries)
    {
        using var zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        foreach (var name in onnxEntries)
        {
            var entry = zip.GetEntry(name);
            if (entry == null) continue;
            using var stream = entry.Open();
            using var reader = new BinaryReader(stream);
            // ML.NET writes a byte array as its int32 length, then the bytes.
            int length = entry.Length >= 4 ? reader.ReadInt32() : -1;
            if (length != entry.Length - 4) return (name, $"the entry holds {entry.Length:N0} bytes but its length prefix says {length:N0}");
            try
            {
                ModelProto.Parser.ParseFrom(reader.ReadBytes(length));
            }
            catch (Google.Protobuf.InvalidProtocolBufferException x)
            {
                return (name, x.Message);
            }
        }
        return null;
    }

    /// <summary>
    /// The bytes of the one ONNX graph a BEiT model.zip holds (its model stage's <c>ApplyOnnxModel</c>), for scorers that
    /// run it on their own ONNX Runtime session. Call after <see cref="Load"/> validated the zip.
    /// </summary>
    internal static byte[] ReadOnnxModel(string path)
    {
        using var file = File.OpenRead(path);
        var names = Validate(path, file);
        if (names.Count != 1) throw Invalid(path, $"it holds {names.Count} ONNX graphs; a BEiT model holds exactly one");
        file.Position = 0;
        using var zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        var entry = zip.GetEntry(names[0])!;
        using var reader = new BinaryReader(entry.Open());
        // ML.NET writes a byte array as its int32 length, then the bytes.
        int length = entry.Length >= 4 ? reader.ReadInt32() : -1;
        if (length != entry.Length - 4) throw Invalid(path, $"entry '{names[0]}' holds {entry.Length:N0} bytes but its length prefix says {length:N0}");
        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length) throw Invalid(path, $"entry '{names[0]}' is truncated");
        return bytes;
    }

    /// <summary>"TransformerChain/Transform_002/.../OnnxModel" → "Transform_002/...".</summary>
    private static string Stage(string entry)
    {
        var parts = entry.Split('/').Where(p => p != "TransformerChain" && p != "OnnxModel" && p != "Model").ToArray();
        return parts.Length == 0 ? entry : string.Join('/', parts);
    }

    private static InvalidDataException Invalid(string path, string problem, Exception? inner = null) =>
        new($"Model '{path}': {problem.TrimEnd('.')}.", inner);
}
