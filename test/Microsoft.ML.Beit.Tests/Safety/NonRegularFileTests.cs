using System.Diagnostics;
using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Safety;

/// <summary>A symbolic link to <c>/dev/zero</c> or a FIFO is refused at once, never read until OOM or waited on forever.</summary>
public sealed class NonRegularFileTests(ITestOutputHelper output)
{
    /// <summary>Makes a FIFO (named pipe) at <paramref name="path"/>: opening it for reading blocks until a writer comes.</summary>
    internal static void MakeFifo(string path)
    {
        using var mkfifo = Process.Start("mkfifo", [path])!;
        Assert.True(mkfifo.WaitForExit(10_000) && mkfifo.ExitCode == 0, "mkfifo failed");
    }

    /// <summary>Runs <paramref name="action"/> on a worker so a hang fails the test instead of blocking it.</summary>
    private T Within<T>(int seconds, Func<T> action) where T : Exception
    {
        var sw = Stopwatch.StartNew();
        var task = Task.Run(() => Record.Exception(() => action()));
        Assert.True(task.Wait(TimeSpan.FromSeconds(seconds)), $"did not return within {seconds} s");
        output.WriteLine($"{sw.ElapsedMilliseconds} ms: {task.Result?.Message}");
        return Assert.IsType<T>(task.Result);
    }

    [Fact]
    public void DeviceSymlinkAndFifoAreRefusedByTheDecoderTheLoaderAndModelZip()
    {
        using var dir = new TempDir();
        string zero = Path.Combine(dir, "zero.png"), fifo = Path.Combine(dir, "fifo.png"), fifoZip = Path.Combine(dir, "model.zip");
        File.CreateSymbolicLink(zero, "/dev/zero");
        MakeFifo(fifo);
        MakeFifo(fifoZip);

        var e = Within<ImageDecodingException>(10, () => { ImageDecoder.Decode(zero); return null!; });
        Assert.Equal(ImageDecodingError.NotARegularFile, e.Error);
        Assert.Contains(zero, e.Message);
        Assert.Contains("character device", e.Message);
        e = Within<ImageDecodingException>(10, () => { ImageDecoder.Decode(fifo); return null!; });
        Assert.Equal(ImageDecodingError.NotARegularFile, e.Error);
        Assert.Contains("FIFO", e.Message);
        Assert.Equal(ImageDecodingError.NotARegularFile,
            Within<ImageDecodingException>(10, () => { ImageDecoder.DecodeLabelMap(fifo); return null!; }).Error);

        // In a pipeline: the BeitInputException names the column, row and file.
        var ml = new MLContext();
        var data = PipelineData.Paths(ml, [Fixtures.Preproc("camera.png"), zero, fifo]);
        var load = ml.Transforms.LoadBeitImages().Fit(data);
        var input = Within<BeitInputException>(10, () => { PipelineData.Bytes(load.Transform(data), "Image"); return null!; });
        Assert.Equal(zero, input.SourceName);

        // A model.zip that is a FIFO is refused the same way.
        var z = Within<InvalidDataException>(10, () => { BeitModelZip.Load(ml, fifoZip, out _); return null!; });
        Assert.Contains(fifoZip, z.Message);
    }

    [Fact]
    public void FilesOverTheByteLimitAreRefusedBeforeTheyAreRead()
    {
        using var dir = new TempDir();
        string big = Path.Combine(dir, "big.png");
        File.Copy(Fixtures.Preproc("chelsea.png"), big);
        long length = new FileInfo(big).Length;
        var options = new ImageDecoderOptions { MaxFileBytes = length - 1 };
        var e = Assert.Throws<ImageDecodingException>(() => ImageDecoder.Decode(big, options));
        Assert.Equal(ImageDecodingError.TooLarge, e.Error);
        Assert.Contains("MaxFileBytes", e.Message);
        Assert.Contains(big, e.Message);
        Assert.Equal(ImageDecodingError.TooLarge, Assert.Throws<ImageDecodingException>(() => ImageDecoder.Decode(new NonSeekable(File.ReadAllBytes(big)), "stream", options)).Error);
        // At the limit it decodes.
        Assert.True(ImageDecoder.Decode(big, options with { MaxFileBytes = length }).Width > 0);
        Assert.Equal(256L << 20, ImageDecoderOptions.Default.MaxFileBytes);
    }

    private sealed class NonSeekable(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
