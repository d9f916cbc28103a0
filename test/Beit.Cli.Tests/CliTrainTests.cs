using System.Buffers.Binary;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary><c>beit train</c> run as the real tool in a separate process, on a tiny MNIST-style IDX folder.</summary>
public sealed class CliTrainTests(ITestOutputHelper output)
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    // IDX files as Fashion-MNIST ships them: big-endian magic and dimensions, then bytes.
    internal static void WriteIdx(string folder, string set, int count, int classes, int seed)
    {
        var rng = new Random(seed);
        var images = new byte[16 + count * 28 * 28];
        BinaryPrimitives.WriteInt32BigEndian(images, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(images.AsSpan(12), 28);
        rng.NextBytes(images.AsSpan(16));
        var labels = new byte[8 + count];
        BinaryPrimitives.WriteInt32BigEndian(labels, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(labels.AsSpan(4), count);
        for (int i = 0; i < count; i++) labels[8 + i] = (byte)(i % classes);
        File.WriteAllBytes(Path.Combine(folder, $"{set}-images-idx3-ubyte"), images);
        File.WriteAllBytes(Path.Combine(folder, $"{set}-labels-idx1-ubyte"), labels);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void TrainFractionKeepsAClassBalancedShareOfTheLabels()
    {
        using var dir = new TempDir();
        WriteIdx(dir, "train", 40, 4, 1);
        WriteIdx(dir, "t10k", 8, 4, 2);
        string zip = Path.Combine(dir, "out", "model.zip");
        string[] common = ["train", dir, "--out", zip, "--epochs", "1", "--batch-size", "8", "--validation-fraction", "0", "--threads", "1"];

        var run = DotnetProcess.Run(Beit, [.. common, "--train-fraction", "0.5"]);
        output.WriteLine(run.Stdout + run.Stderr);
        Assert.Equal(0, run.ExitCode);
        // 10 images per class, half of each kept; the IDX test set is used whole.
        Assert.Contains("20 training and 8 test images at 28×28", run.Stdout.Replace("\n", " "));
        Assert.True(File.Exists(zip));

        File.Delete(zip);
        var bad = DotnetProcess.Run(Beit, [.. common, "--train-fraction", "0"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--train-fraction", bad.Stderr);
        Assert.False(File.Exists(zip));
    }
}
