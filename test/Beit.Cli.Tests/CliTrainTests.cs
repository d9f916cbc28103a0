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

    [Trait("Category", "Slow")]
    [Fact]
    public void TimeBudgetIsParsedAndTheReportIsWrittenAsTextAndJson()
    {
        using var dir = new TempDir();
        WriteIdx(dir, "train", 40, 4, 1);
        WriteIdx(dir, "t10k", 8, 4, 2);
        string zip = Path.Combine(dir, "out", "model.zip");
        string[] common = ["train", dir, "--out", zip, "--batch-size", "8", "--threads", "1"];

        var bad = DotnetProcess.Run(Beit, [.. common, "--time", "5x"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--time '5x'", bad.Stderr);
        Assert.False(File.Exists(zip));

        // 4 s: too short for a search (under 2 s per trial), so the defaults train for the budget.
        var run = DotnetProcess.Run(Beit, [.. common, "--time", "4s"]);
        output.WriteLine(run.Stdout + run.Stderr);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("Time budget 00:04 (given)", run.Stdout);
        Assert.Contains("validated on 4 more", run.Stdout.Replace("\n", " "));
        string stem = Path.Combine(dir, "out", "model");
        Assert.Contains("Time budget 00:04 (given)", File.ReadAllText(stem + ".report.txt"));
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(stem + ".report.json"));
        Assert.Equal(4, json.RootElement.GetProperty("search").GetProperty("budgetSeconds").GetDouble());
        Assert.Equal((36, 4, 8), (json.RootElement.GetProperty("trainCount").GetInt32(), json.RootElement.GetProperty("validationCount").GetInt32(),
            json.RootElement.GetProperty("testCount").GetInt32()));
        Assert.False(File.Exists(stem + ".search.png")); // no trials, no search plot
    }
}
