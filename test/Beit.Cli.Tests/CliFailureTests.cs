using System.Diagnostics;
using System.Text.Json;
using Beit.Tests.Estimators;
using Xunit.Abstractions;

namespace Beit.Tests.Safety;

/// <summary>
/// The <c>beit</c> CLI, run as the real tool: partial results with per-image errors, one-line errors and exit codes,
/// outputs checked before work starts, and no temporary files left behind (each run gets its own empty TMPDIR).
/// </summary>
public sealed class CliFailureTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private (int Code, string Stdout, string Stderr) Run(string tmp, params string[] args)
    {
        Directory.CreateDirectory(tmp);
        var sw = Stopwatch.StartNew();
        var result = DotnetProcess.Run(Beit, args, environment: new Dictionary<string, string?> { ["TMPDIR"] = tmp });
        output.WriteLine($"beit {string.Join(' ', args.Select(Path.GetFileName))} → {result.ExitCode} in {sw.ElapsedMilliseconds} ms{(result.Stderr.Length > 0 ? ": " + result.Stderr.Trim() : "")}");
        return result;
    }

    /// <summary>
    /// Files under <paramref name="folder"/>, except ONNX Runtime's <c>.ses</c>: its native library keeps one 51-byte
    /// session id at <c>$TMPDIR/.ses</c>, rewritten in place by every process (not a per-run leftover).
    /// </summary>
    private static string[] Files(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Where(f => f != Path.Combine(folder, ".ses")).ToArray();

    private string ImageFolderWithOneBadFile()
    {
        string folder = Path.Combine(_dir, "images");
        Directory.CreateDirectory(folder);
        foreach (var name in new[] { "camera.png", "coffee.png" }) File.Copy(Fixtures.Preproc(name), Path.Combine(folder, name));
        File.WriteAllText(Path.Combine(folder, "broken.png"), "not an image");
        return folder;
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void PredictPrintsEveryGoodResultAndAnErrorEntryPerBadImageAndExitsNonZero()
    {
        string tmp = Path.Combine(_dir, "tmp"), zip = Path.Combine(_dir, "model.zip");
        Assert.Equal(0, Run(tmp, "package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip).Code);
        string folder = ImageFolderWithOneBadFile(), broken = Path.Combine(folder, "broken.png");
        foreach (var model in new[] { zip, Fixtures.Tiny("cls_relpos") })
        {
            var run = Run(tmp, "predict", "--model", model, "--json", "--top-k", "2", folder);
            Assert.Equal(1, run.Code);
            using var doc = JsonDocument.Parse(run.Stdout);
            var entries = doc.RootElement.EnumerateArray().ToArray();
            Assert.Equal([broken, Path.Combine(folder, "camera.png"), Path.Combine(folder, "coffee.png")], entries.Select(e => e.GetProperty("source").GetString()));
            Assert.Equal(["source", "error"], entries[0].EnumerateObject().Select(p => p.Name));
            Assert.Contains("cannot decode the image: not a PNG, JPEG, BMP, GIF or WebP image", entries[0].GetProperty("error").GetString());
            foreach (var good in entries[1..])
            {
                Assert.Equal(["source", "predictions"], good.EnumerateObject().Select(p => p.Name));
                Assert.Equal(2, good.GetProperty("predictions").GetArrayLength());
            }
            Assert.StartsWith("beit predict: 1 of 3 images failed", run.Stderr);

            var text = Run(tmp, "predict", "--model", model, folder);
            Assert.Equal(1, text.Code);
            Assert.Contains($"{broken}\n  error: ", text.Stdout.ReplaceLineEndings("\n"));
            Assert.Contains(Path.Combine(folder, "coffee.png"), text.Stdout);
        }
        Assert.Empty(Files(tmp));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void PackageAndTrainLeaveNothingInTmpAndUnwritableOutputsFailBeforeTraining()
    {
        string tmp = Path.Combine(_dir, "tmp");
        string zip = Path.Combine(_dir, "out", "model.zip");
        Assert.Equal(0, Run(tmp, "package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip).Code);
        Assert.Empty(Files(tmp));

        string idx = Path.Combine(_dir, "idx");
        Directory.CreateDirectory(idx);
        CliTrainTests.WriteIdx(idx, "train", 24, 3, 1);
        CliTrainTests.WriteIdx(idx, "t10k", 6, 3, 2);
        string[] train = ["train", idx, "--epochs", "1", "--batch-size", "8", "--validation-fraction", "0", "--threads", "1"];
        var ok = Run(tmp, [.. train, "--out", Path.Combine(_dir, "trained", "model.zip")]);
        Assert.Equal(0, ok.Code);
        Assert.Empty(Files(tmp));
        Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "trained"), "*.tmp"));

        // A path under a regular file can never be created (even by root, which ignores permissions).
        string file = Path.Combine(_dir, "a-file");
        File.WriteAllText(file, "x");
        string unwritable = Path.Combine(file, "model.zip");
        var bad = Run(tmp, [.. train, "--out", unwritable]);
        Assert.Equal(1, bad.Code);
        Assert.StartsWith($"beit train: Cannot write '{unwritable}'", bad.Stderr);
        Assert.DoesNotContain("epoch 1", bad.Stdout);
        Assert.Single(bad.Stderr.Trim().Split('\n'));

        var badCheckpoints = Run(tmp, [.. train, "--out", Path.Combine(_dir, "trained", "again.zip"), "--checkpoint-dir", Path.Combine(file, "ckpt")]);
        Assert.Equal(1, badCheckpoints.Code);
        Assert.StartsWith("beit train: Cannot write", badCheckpoints.Stderr);
        Assert.DoesNotContain("epoch 1", badCheckpoints.Stdout);

        var export = Run(tmp, "export-onnx", Fixtures.Tiny("cls_relpos"), Path.Combine(file, "m.onnx"), "--task", "image-classification");
        Assert.Equal(1, export.Code);
        Assert.StartsWith("beit export-onnx: Cannot write", export.Stderr);
        Assert.Single(export.Stderr.Trim().Split('\n'));
        Assert.Empty(Files(tmp));
    }

    [Fact]
    public void ModelZipErrorsAreOneLine()
    {
        string tmp = Path.Combine(_dir, "tmp"), zip = Path.Combine(_dir, "truncated.zip");
        File.WriteAllBytes(zip, File.ReadAllBytes(TestZips.TinyZip(_dir))[..1000]);
        var run = Run(tmp, "predict", "--model", zip, Fixtures.Preproc("camera.png"));
        Assert.Equal(1, run.Code);
        Assert.Equal($"beit predict: Model '{zip}': it is not a zip archive, or it is truncated", run.Stderr.Trim().Split(" (")[0]);
        Assert.Single(run.Stderr.Trim().Split('\n'));
        Assert.Empty(Files(tmp));

        // --verbose (global, before or after the command) adds the stack trace.
        var verbose = Run(tmp, "--verbose", "predict", "--model", zip, Fixtures.Preproc("camera.png"));
        Assert.Equal(1, verbose.Code);
        Assert.StartsWith($"beit predict: Model '{zip}'", verbose.Stderr);
        Assert.Contains("   at Microsoft.ML.Beit.BeitModelZip.", verbose.Stderr);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void AKilledPackageLeavesOnlyRecognisableLeftoversThatTheNextRunSweeps()
    {
        string tmp = Path.Combine(_dir, "tmp"), zip = Path.Combine(_dir, "model.zip");
        Directory.CreateDirectory(tmp);
        using var package = DotnetProcess.Start(Beit, ["package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip],
            // The runtime's own diagnostic pipes in TMPDIR would outlive SIGKILL too; they are not ours to test.
            environment: new Dictionary<string, string?> { ["TMPDIR"] = tmp, ["DOTNET_EnableDiagnostics"] = "0" });
        string processFolder = Path.Combine(tmp, "beit", package.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var sw = Stopwatch.StartNew();
        // Kill it (SIGKILL: no exit handlers) as soon as it has written a temporary ONNX model.
        while (!(Directory.Exists(processFolder) && Directory.GetFiles(processFolder, "*.onnx").Length > 0) && !package.HasExited && sw.Elapsed < TimeSpan.FromSeconds(120))
            Thread.Sleep(5);
        Assert.False(package.HasExited, "package finished before it could be killed");
        package.Kill();
        package.WaitForExit();
        output.WriteLine($"killed after {sw.ElapsedMilliseconds} ms: {string.Join(", ", Files(tmp).Select(f => Path.GetRelativePath(tmp, f)))}");
        var leftovers = Files(tmp);
        Assert.NotEmpty(leftovers);
        Assert.All(leftovers, f => Assert.StartsWith(processFolder, f));
        // Leftovers next to the target would carry the dead process's id; make one as a killed save would have.
        string stale = Path.Combine(_dir, $".model.zip.beit-{package.Id}-0123.tmp");
        File.WriteAllText(stale, "half a zip");

        // A dead process's folder younger than an hour is kept (it may belong to a process in another PID namespace).
        Assert.Equal(0, Run(tmp, "predict", "--model", Fixtures.Tiny("cls_relpos"), Fixtures.Preproc("camera.png")).Code);
        Assert.True(Directory.Exists(processFolder));
        foreach (var entry in new DirectoryInfo(processFolder).EnumerateFileSystemInfos("*", SearchOption.AllDirectories).Append(new DirectoryInfo(processFolder)))
            entry.LastWriteTimeUtc = DateTime.UtcNow.AddHours(-2);
        Assert.Equal(0, Run(tmp, "package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip).Code);
        Assert.False(Directory.Exists(processFolder));
        Assert.False(File.Exists(stale));
        Assert.Empty(Files(tmp));
    }
}
