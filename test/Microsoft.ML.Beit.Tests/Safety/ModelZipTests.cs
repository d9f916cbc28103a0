using System.Diagnostics;
using System.IO.Compression;
using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.IO;
using Xunit.Abstractions;

namespace Beit.Tests.Safety;

/// <summary>A truncated, garbled, inflating or bit-flipped model.zip is refused with one clear error, fast, leaving no temporary files.</summary>
public sealed class ModelZipTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A small classification model.zip (paths → scores) from the tiny fixture.</summary>
    internal static string TinyZip(string dir, string name = "model.zip") => TestZips.TinyZip(dir, name);

    internal static string OnnxEntry(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        return archive.Entries.Single(e => e.FullName.EndsWith("/OnnxModel", StringComparison.Ordinal)).FullName;
    }

    /// <summary>Rewrites one entry of a zip with new content (sizes and CRC then match the new content).</summary>
    internal static void ReplaceEntry(string zip, string name, byte[] content, CompressionLevel level = CompressionLevel.Optimal)
    {
        using var archive = ZipFile.Open(zip, ZipArchiveMode.Update);
        archive.GetEntry(name)!.Delete();
        using var stream = archive.CreateEntry(name, level).Open();
        stream.Write(content);
    }

    private InvalidDataException Refused(string zip, int withinMs)
    {
        var ml = new MLContext();
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<InvalidDataException>(() => BeitModelZip.Load(ml, zip, out _));
        output.WriteLine($"{sw.ElapsedMilliseconds} ms: {e.Message}");
        Assert.True(sw.ElapsedMilliseconds < withinMs, $"took {sw.ElapsedMilliseconds} ms");
        Assert.Contains(zip, e.Message);
        Assert.DoesNotContain("\n", e.Message);
        return e;
    }

    /// <summary>The failed load's temporary folder (where ML.NET extracted the ONNX model) is gone.</summary>
    private static void AssertNoLeftovers()
    {
        Assert.NotNull(BeitModelZip.LastFailedLoadFolder);
        Assert.StartsWith(BeitTempFiles.ProcessFolder, BeitModelZip.LastFailedLoadFolder);
        Assert.False(Directory.Exists(BeitModelZip.LastFailedLoadFolder));
    }

    [Fact]
    public void AGoodZipLoadsAndScoresAsMLNetDoes()
    {
        string zip = TinyZip(_dir);
        var ml = new MLContext();
        var data = PipelineData.Paths(ml, PipelineData.PhotoPaths());
        var plain = ml.Model.Load(zip, out _);
        List<float[]> expected;
        using (plain as IDisposable) expected = PipelineData.Floats(plain.Transform(data), "Score");
        var safe = BeitModelZip.Load(ml, zip, out var schema);
        using (safe as IDisposable) Assert.Equal(expected, PipelineData.Floats(safe.Transform(data), "Score"));
        Assert.Equal(["ImagePath"], schema.Select(c => c.Name));
        Assert.Equal(Path.GetTempPath(), ml.TempFilePath); // restored after the load
    }

    [Fact]
    public void TruncatedZipIsOneClearError()
    {
        string zip = TinyZip(_dir);
        var bytes = File.ReadAllBytes(zip);
        foreach (int keep in new[] { 0, 10, bytes.Length / 2, bytes.Length - 30 })
        {
            File.WriteAllBytes(zip, bytes[..keep]);
            Refused(zip, 5_000);
        }
    }

    [Fact]
    public void GarbledOnnxNamesTheZipAndTheStageAndLeavesNoTempFile()
    {
        string zip = TinyZip(_dir);
        string entry = OnnxEntry(zip);
        var onnx = ReadEntry(zip, entry);
        // Keep ML.NET's length prefix, garble the protobuf after it.
        var garbled = (byte[])onnx.Clone();
        for (int i = 4; i < garbled.Length; i += 7) garbled[i] ^= 0x5A;
        ReplaceEntry(zip, entry, garbled);
        BeitModelZip.LastFailedLoadFolder = null;
        var e = Refused(zip, 10_000);
        Assert.Contains("(ApplyOnnxModel): invalid ONNX model", e.Message);
        Assert.DoesNotContain("Error during class instantiation", e.Message);
        AssertNoLeftovers();
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void AnEntryInflatingToOneGiBIsRefusedFromTheDirectoryInMilliseconds()
    {
        string zip = TinyZip(_dir);
        string entry = OnnxEntry(zip);
        var bomb = new byte[1 << 30];
        BitConverter.TryWriteBytes(bomb, bomb.Length - 4);
        var sw = Stopwatch.StartNew();
        ReplaceEntry(zip, entry, bomb, CompressionLevel.Fastest);
        output.WriteLine($"built the 1 GiB entry ({new FileInfo(zip).Length:N0} bytes zipped) in {sw.ElapsedMilliseconds} ms");
        bomb = null;
        var e = Refused(zip, 2_000);
        Assert.Contains("zip bomb", e.Message);
        Assert.Contains(entry, e.Message);
    }

    [Fact]
    public void AFlippedBitWithAStaleCrcIsCaught()
    {
        var (zip, entry, onnx, bytes) = StoredOnnxZip();
        // A flipped byte in the file is a flipped byte of the ONNX model, and the recorded CRC is the old one.
        int at = IndexOf(bytes, onnx.AsSpan(onnx.Length / 2, 64)) + 32;
        Assert.True(at > 32);
        bytes[at] ^= 0x01;
        File.WriteAllBytes(zip, bytes);
        var e = Refused(zip, 5_000);
        Assert.Contains("CRC-32", e.Message);
        Assert.Contains(entry, e.Message);
    }

    [Fact]
    public void EntrySizeLiesAndTraversalNamesAreRefused()
    {
        var (zip, entry, onnx, bytes) = StoredOnnxZip();
        // Lower the declared uncompressed size in the central directory (and the local header): the content is longer.
        var name = System.Text.Encoding.UTF8.GetBytes(entry);
        int central = LastIndexOf(bytes, [0x50, 0x4B, 0x01, 0x02], name, 46);
        int local = LastIndexOf(bytes, [0x50, 0x4B, 0x03, 0x04], name, 30);
        BitConverter.TryWriteBytes(bytes.AsSpan(central + 24, 4), onnx.Length - 100);
        BitConverter.TryWriteBytes(bytes.AsSpan(local + 22, 4), onnx.Length - 100);
        File.WriteAllBytes(zip, bytes);
        Refused(zip, 5_000);

        string traversal = TinyZip(_dir, "traversal.zip");
        using (var archive = ZipFile.Open(traversal, ZipArchiveMode.Update))
        using (var s = archive.CreateEntry("../../evil.txt").Open())
            s.Write("x"u8);
        Assert.Contains("not a relative path", Refused(traversal, 5_000).Message);
    }

    [Fact]
    public void AFailedLoadLeavesNothingInTheTemporaryFolder()
    {
        string zip = TinyZip(_dir);
        string entry = OnnxEntry(zip);
        // Valid protobuf, not a valid model for ONNX Runtime: passes our checks, fails inside ML.NET.
        byte[] notAModel = [0, 0, 0, 0];
        BitConverter.TryWriteBytes(notAModel, 0);
        ReplaceEntry(zip, entry, notAModel);
        BeitModelZip.LastFailedLoadFolder = null;
        var e = Refused(zip, 10_000);
        Assert.Contains("ApplyOnnxModel", e.Message);
        AssertNoLeftovers();
    }

    /// <summary>The tiny zip with its ONNX entry rewritten stored (uncompressed), the entry, its content and the zip's bytes.</summary>
    private (string Zip, string Entry, byte[] Onnx, byte[] Bytes) StoredOnnxZip()
    {
        string zip = TinyZip(_dir);
        string entry = OnnxEntry(zip);
        var onnx = ReadEntry(zip, entry);
        ReplaceEntry(zip, entry, onnx, CompressionLevel.NoCompression);
        return (zip, entry, onnx, File.ReadAllBytes(zip));
    }

    internal static byte[] ReadEntry(string zip, string entry)
    {
        using var archive = ZipFile.OpenRead(zip);
        using var s = archive.GetEntry(entry)!.Open();
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    private static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle);

    /// <summary>The last header with <paramref name="signature"/> whose file name (at <paramref name="nameOffset"/>) is <paramref name="name"/>.</summary>
    private static int LastIndexOf(byte[] bytes, byte[] signature, byte[] name, int nameOffset)
    {
        for (int i = bytes.Length - signature.Length; i >= 0; i--)
            if (bytes.AsSpan(i).StartsWith(signature) && i + nameOffset + name.Length <= bytes.Length && bytes.AsSpan(i + nameOffset).StartsWith(name))
                return i;
        throw new InvalidOperationException("header not found");
    }
}
