using System.Diagnostics;
using Microsoft.ML.Beit.IO;

namespace Beit.Tests.Safety;

/// <summary>Temp-then-rename writes, and the sweep of what a killed process left next to its target.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static int DeadPid()
    {
        using var p = Process.Start("true")!;
        p.WaitForExit();
        return p.Id;
    }

    [Fact]
    public void WriteManyRenamesOnlyWhenEveryFileIsWrittenAndDeletesANullWritersTarget()
    {
        string weights = Path.Combine(_dir, "model.safetensors"), config = Path.Combine(_dir, "config.json"), processor = Path.Combine(_dir, "preprocessor_config.json");
        File.WriteAllText(weights, "old weights");
        File.WriteAllText(config, "old config");
        File.WriteAllText(processor, "old processor");
        Assert.Throws<IOException>(() => AtomicFile.WriteMany(
        [
            (weights, tmp => File.WriteAllText(tmp, "new weights")),
            (config, tmp => { File.WriteAllText(tmp, "half"); throw new IOException("disk full"); }),
        ]));
        Assert.Equal("old weights", File.ReadAllText(weights));
        Assert.Equal("old config", File.ReadAllText(config));
        Assert.Equal(3, Directory.GetFileSystemEntries(_dir).Length);

        AtomicFile.WriteMany(
        [
            (weights, tmp => File.WriteAllText(tmp, "new weights")),
            (processor, null),
            (config, tmp => File.WriteAllText(tmp, "new config")),
        ]);
        Assert.Equal("new weights", File.ReadAllText(weights));
        Assert.Equal("new config", File.ReadAllText(config));
        Assert.Equal(["config.json", "model.safetensors"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void AFailedWriteLeavesNeitherTargetNorTempAndStaleLeftoversOfDeadProcessesAreSwept()
    {
        string target = Path.Combine(_dir, "model.zip");
        Assert.Throws<IOException>(() => AtomicFile.Write(target, tmp => { File.WriteAllText(tmp, "half"); throw new IOException("disk full"); }));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));

        int dead = DeadPid();
        string staleFile = Path.Combine(_dir, $".model.zip.beit-{dead}-abc.tmp"), liveFile = Path.Combine(_dir, ".model.zip.beit-1-abc.tmp");
        string staleFolder = Path.Combine(_dir, $".last.beit-{dead}-abc.tmp");
        File.WriteAllText(staleFile, "x");
        File.WriteAllText(liveFile, "x"); // pid 1 runs: may be another process's write in progress
        Directory.CreateDirectory(staleFolder);
        File.WriteAllText(Path.Combine(staleFolder, "model.safetensors"), "x");

        AtomicFile.Write(target, tmp => File.WriteAllText(tmp, "whole"));
        Assert.Equal("whole", File.ReadAllText(target));
        Assert.False(File.Exists(staleFile));
        Assert.True(File.Exists(liveFile));

        AtomicFile.WriteFolder(Path.Combine(_dir, "last"), tmp => { Directory.CreateDirectory(tmp); File.WriteAllText(Path.Combine(tmp, "a"), "1"); });
        AtomicFile.WriteFolder(Path.Combine(_dir, "last"), tmp => { Directory.CreateDirectory(tmp); File.WriteAllText(Path.Combine(tmp, "a"), "2"); });
        Assert.Equal("2", File.ReadAllText(Path.Combine(_dir, "last", "a")));
        Assert.False(Directory.Exists(staleFolder));
        Assert.Equal([".model.zip.beit-1-abc.tmp", "last", "model.zip"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void CheckWritableFailsForAPathUnderAFileAndLeavesNoProbe()
    {
        string file = Path.Combine(_dir, "file");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<IOException>(() => AtomicFile.CheckWritable(Path.Combine(file, "model.zip")));
        Assert.StartsWith($"Cannot write '{Path.Combine(file, "model.zip")}'", e.Message);
        AtomicFile.CheckWritable(Path.Combine(_dir, "sub", "model.zip"));
        Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "sub")));
        // An existing checkpoint folder (replaced whole by WriteFolder) only needs its parent to be writable.
        Directory.CreateDirectory(Path.Combine(_dir, "sub", "last"));
        AtomicFile.CheckWritable(Path.Combine(_dir, "sub", "last"));
        Assert.Equal(["last"], Directory.GetFileSystemEntries(Path.Combine(_dir, "sub")).Select(Path.GetFileName));
    }
}
