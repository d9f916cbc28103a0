using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Training.ImageClassification;

namespace Beit.Tests;

public class BeitImageFolderTests
{
    [Fact]
    public void ReadsClassSubfoldersSkipsCorruptFilesAndResizesPillowExactly()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "cat"));
        Directory.CreateDirectory(Path.Combine(dir, "objects"));
        Directory.CreateDirectory(Path.Combine(dir, "empty"));
        File.Copy(Fixtures.Preproc("chelsea.png"), Path.Combine(dir, "cat", "a.png"));
        File.Copy(Fixtures.Preproc("rgba_small.png"), Path.Combine(dir, "cat", "b.png"));
        File.Copy(Fixtures.Preproc("coffee.png"), Path.Combine(dir, "objects", "c.png"));
        File.Copy(Fixtures.Preproc("camera.png"), Path.Combine(dir, "objects", "d.png"));
        File.WriteAllBytes(Path.Combine(dir, "objects", "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        File.WriteAllText(Path.Combine(dir, "objects", "notes.txt"), "not an image");

        var r = BeitImageFolder.Load(dir, 24);
        Assert.Equal(new[] { "cat", "objects" }, r.Images.ClassNames);
        Assert.Equal(4, r.Images.Count);
        Assert.Equal(new[] { 0, 0, 1, 1 }, r.Images.Labels);
        var skipped = Assert.Single(r.Skipped);
        Assert.EndsWith("broken.png", skipped.Path);
        Assert.Equal(2, r.ClassCounts["objects"]);
        Assert.Empty(r.BalanceWarnings());

        var expected = PillowResampler.Resize(ImageDecoder.Decode(Fixtures.Preproc("coffee.png")), new PixelSize(24, 24), PillowResample.Bicubic).Pixels;
        var chw = r.Images.Pixels.AsSpan(2 * 3 * 24 * 24, 3 * 24 * 24);
        for (int p = 0; p < 24 * 24; p++)
            for (int c = 0; c < 3; c++)
                Assert.Equal(expected[3 * p + c], chw[c * 24 * 24 + p]);
    }

    [Fact]
    public void FolderWithoutTwoClassesIsRejected()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "only"));
        File.Copy(Fixtures.Preproc("chelsea.png"), Path.Combine(dir, "only", "a.png"));
        Assert.Throws<InvalidDataException>(() => BeitImageFolder.Load(dir, 16));
        Assert.Throws<DirectoryNotFoundException>(() => BeitImageFolder.Load(Path.Combine(dir, "missing"), 16));
    }

    [Fact]
    public async Task DeviceLinksAndFifosAreSkippedWithTheReasonNotReadOrWaitedOn()
    {
        using var dir = new TempDir();
        foreach (var c in new[] { "cat", "dog" })
        {
            Directory.CreateDirectory(Path.Combine(dir, c));
            File.Copy(Fixtures.Preproc("chelsea.png"), Path.Combine(dir, c, "a.png"));
        }
        File.CreateSymbolicLink(Path.Combine(dir, "cat", "zero.png"), "/dev/zero");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [Path.Combine(dir, "dog", "fifo.png")])!)
            Assert.True(mkfifo.WaitForExit(10_000) && mkfifo.ExitCode == 0);

        // A TimeoutException here means the loader hung on the FIFO or kept reading /dev/zero.
        var r = await Task.Run(() => BeitImageFolder.Load(dir, 16)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, r.Images.Count);
        Assert.Equal(["fifo.png", "zero.png"], r.Skipped.Select(s => Path.GetFileName(s.Path)).Order(StringComparer.Ordinal));
        Assert.All(r.Skipped, s => Assert.Contains("not a regular file", s.Reason));
    }
}
