using System.Text.Json;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary><c>beit predict</c> at scale (--jsonl, --shard, --resume, --batch-size, segmentation PNGs) and <c>beit export-triton</c>, run as the real tool.</summary>
public sealed class CliBatchScoringTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var result = DotnetProcess.Run(Beit, args);
        output.WriteLine($"beit {string.Join(' ', args.Select(Path.GetFileName))} → {result.ExitCode}{(result.Stderr.Length > 0 ? ": " + result.Stderr.Trim() : "")}");
        return result;
    }

    /// <summary>Seven images (six photos under distinct names, one in a sub-folder, and a truncated PNG) and a text file.</summary>
    private string Folder()
    {
        string folder = Path.Combine(_dir, "images");
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        string[] photos = ["chelsea.png", "camera.png", "coffee.png", "astronaut.png"];
        for (int i = 0; i < 6; i++) File.Copy(Fixtures.Preproc(photos[i % 4]), Path.Combine(folder, i == 5 ? "sub" : "", $"p{i}_{photos[i % 4]}"));
        File.WriteAllBytes(Path.Combine(folder, "broken.png"), File.ReadAllBytes(Fixtures.Preproc("coffee.png"))[..500]);
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "not an image");
        return folder;
    }

    private static Dictionary<string, JsonElement> Lines(string text)
    {
        Assert.EndsWith("\n", text);
        var result = new Dictionary<string, JsonElement>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var e = JsonDocument.Parse(line).RootElement.Clone();
            result.Add(e.GetProperty("source").GetString()!, e);
        }
        return result;
    }

    private static (string Label, float Probability)[] Predictions(JsonElement e) =>
        e.GetProperty("predictions").EnumerateArray().Select(p => (p.GetProperty("label").GetString()!, p.GetProperty("probability").GetSingle())).ToArray();

    [Trait("Category", "Slow")]
    [Fact]
    public void JsonLinesShardsBatchesAndResumes()
    {
        string zip = TestZips.TinyZip(_dir), folder = Folder();

        var full = Run("predict", "--model", zip, "--jsonl", "--recursive", folder);
        Assert.Equal(1, full.Code);
        Assert.Contains("1 of 7 images failed", full.Stderr);
        var all = Lines(full.Stdout);
        Assert.Equal(7, all.Count);
        Assert.Contains(Path.Combine(folder, "sub", "p5_camera.png"), all.Keys);
        var bad = all[Path.Combine(folder, "broken.png")];
        Assert.Equal(["source", "error"], bad.EnumerateObject().Select(p => p.Name));
        Assert.Contains("the image is truncated", bad.GetProperty("error").GetString());
        Assert.All(all.Values.Where(e => !e.TryGetProperty("error", out _)), e => Assert.Equal(["source", "predictions"], e.EnumerateObject().Select(p => p.Name)));
        // The same photo under two names scores the same.
        Assert.Equal(Predictions(all[Path.Combine(folder, "p0_chelsea.png")]), Predictions(all[Path.Combine(folder, "p4_chelsea.png")]));

        // Shards: disjoint, and together every image.
        var shards = Enumerable.Range(0, 3).Select(i => Lines(Run("predict", "--model", zip, "--jsonl", "--recursive", "--shard", $"{i}/3", folder).Stdout).Keys.ToHashSet()).ToArray();
        Assert.Equal(7, shards.Sum(s => s.Count));
        Assert.Equal(all.Keys.ToHashSet(), shards.SelectMany(s => s).ToHashSet());

        // Batches of 3 give batch 1's results.
        var batched = Lines(Run("predict", "--model", zip, "--jsonl", "--recursive", "--batch-size", "3", folder).Stdout);
        Assert.Equal(all.Keys.ToHashSet(), batched.Keys.ToHashSet());
        foreach (var (source, e) in all)
        {
            if (e.TryGetProperty("error", out _))
            {
                Assert.True(batched[source].TryGetProperty("error", out _));
                continue;
            }
            var (a, b) = (Predictions(e), Predictions(batched[source]));
            Assert.Equal(a.Select(p => p.Label), b.Select(p => p.Label));
            Assert.True(TestMath.MaxAbsDiff(a.Select(p => p.Probability).ToArray(), b.Select(p => p.Probability).ToArray()) <= 1e-5f, source);
        }

        // Resume after a run killed mid-line: the two finished lines are kept, the cut-off one is scored again, once.
        string results = Path.Combine(_dir, "out", "results.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(results)!);
        var first = full.Stdout.Split('\n');
        File.WriteAllText(results, first[0] + "\n" + first[1] + "\n" + first[2][..(first[2].Length / 2)]);
        var resumed = Run("predict", "--model", zip, "--jsonl", "--recursive", "--out", results, "--resume", "--progress", folder);
        Assert.Contains("resuming; 2 images already in", resumed.Stderr);
        Assert.Contains("img/s", resumed.Stderr);
        Assert.Equal("", resumed.Stdout);
        var lines = File.ReadAllText(results);
        Assert.Equal(7, lines.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(all.Keys.ToHashSet(), Lines(lines).Keys.ToHashSet());
        // Nothing left to do.
        var again = Run("predict", "--model", zip, "--jsonl", "--recursive", "--out", results, "--resume", folder);
        Assert.Equal(0, again.Code);
        Assert.Equal(lines, File.ReadAllText(results));
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void SegmentationWritesLabelAndOverlayPngsAndClassFractions()
    {
        string zip = TestZips.SegmentationZip(_dir), folder = Folder();
        string results = Path.Combine(_dir, "seg", "results.jsonl");
        var run = Run("predict", "--model", zip, "--jsonl", "--recursive", "--batch-size", "2", "--out", results, folder);
        Assert.Equal(1, run.Code);
        var all = Lines(File.ReadAllText(results));
        Assert.Equal(7, all.Count);
        foreach (var (source, e) in all)
        {
            if (source.EndsWith("broken.png", StringComparison.Ordinal))
            {
                Assert.True(e.TryGetProperty("error", out _));
                continue;
            }
            Assert.Equal(["source", "size", "labels_png", "overlay_png", "classes"], e.EnumerateObject().Select(p => p.Name));
            var image = ImageDecoder.Decode(source);
            Assert.Equal([image.Height, image.Width], e.GetProperty("size").EnumerateArray().Select(v => v.GetInt32()));
            // <relative path without extension>.labels.png next to the output file.
            string stem = Path.Combine(_dir, "seg", Path.ChangeExtension(Path.GetRelativePath(folder, source), null));
            Assert.Equal(stem + ".labels.png", e.GetProperty("labels_png").GetString());
            Assert.Equal(stem + ".overlay.png", e.GetProperty("overlay_png").GetString());
            var labels = ImageDecoder.DecodeLabelMap(stem + ".labels.png");
            Assert.Equal((image.Width, image.Height), (labels.Width, labels.Height));
            var overlay = ImageDecoder.Decode(stem + ".overlay.png");
            Assert.Equal((image.Width, image.Height), (overlay.Width, overlay.Height));
            // The fractions are those of the PNG's class ids.
            var expected = BeitSegmentationRendering.ClassFractions(labels.Labels.Select(b => (int)b).ToArray(), [.. Enumerable.Range(0, 6).Select(i => $"LABEL_{i}")]);
            var classes = e.GetProperty("classes").EnumerateArray().ToArray();
            Assert.Equal(expected.Select(c => (c.ClassId, c.Label, c.Pixels)), classes.Select(c => (c.GetProperty("id").GetInt32(), c.GetProperty("label").GetString()!, c.GetProperty("pixels").GetInt64())));
            Assert.Equal(1.0, classes.Sum(c => c.GetProperty("fraction").GetDouble()), 9);
        }
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ExportTritonAndUsageErrors()
    {
        string zip = TestZips.TinyZip(_dir), repo = Path.Combine(_dir, "repo");
        var export = Run("export-triton", zip, repo, "--name", "beit-tiny", "--max-batch-size", "4");
        Assert.Equal(0, export.Code);
        Assert.Contains("max_batch_size: 4\n", File.ReadAllText(Path.Combine(repo, "beit-tiny", "config.pbtxt")));
        Assert.True(File.Exists(Path.Combine(repo, "beit-tiny", "1", "model.onnx")));
        Assert.Equal(2, Run("export-triton", zip, repo, "--max-batch-size", "0").Code);

        string photo = Fixtures.Preproc("camera.png");
        foreach (var (args, message) in new (string[], string)[]
        {
            (["--resume", "--jsonl"], "--resume needs --jsonl --out"),
            (["--out", Path.Combine(_dir, "x.jsonl")], "--out needs --jsonl"),
            (["--shard", "3/2"], "--shard: A shard is i/n"),
            (["--batch-size", "0"], "--batch-size must be 1 to 4096"),
            (["--json", "--jsonl"], "--json and --jsonl exclude each other"),
            (["--engine", "torch", "--jsonl"], "need --engine onnx"),
        })
        {
            var r = Run(["predict", "--model", zip, .. args, photo]);
            Assert.Equal(2, r.Code);
            Assert.Contains(message, r.Stderr);
        }
    }
}
