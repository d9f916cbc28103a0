using System.Text.Json;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary><c>beit package</c> and <c>beit predict</c>, run as the real tool in a separate process.</summary>
public sealed class CliPackagePredictTests(ITestOutputHelper output)
{
    /// <summary>Stated tolerance between the ONNX Runtime and TorchSharp engines (fp32, tiny model).</summary>
    private const float EngineTolerance = 1e-5f;

    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    private (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var result = DotnetProcess.Run(Beit, args);
        output.WriteLine($"beit {string.Join(' ', args.Select(Path.GetFileName))} → {result.ExitCode}{(result.Stderr.Length > 0 ? ": " + result.Stderr.Trim() : "")}");
        return result;
    }

    private static List<(string Source, List<(string Label, float Probability)> Predictions)> Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(JsonValueKind.Array, doc.RootElement.ValueKind);
        return doc.RootElement.EnumerateArray().Select(e =>
        {
            Assert.Equal(["source", "predictions"], e.EnumerateObject().Select(p => p.Name));
            var predictions = e.GetProperty("predictions").EnumerateArray().Select(p =>
            {
                Assert.Equal(["label", "probability"], p.EnumerateObject().Select(x => x.Name));
                return (p.GetProperty("label").GetString()!, p.GetProperty("probability").GetSingle());
            }).ToList();
            return (e.GetProperty("source").GetString()!, predictions);
        }).ToList();
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void PackageWithPrecisionInt8WritesASmallerZipThatPredictsTheSameLabels()
    {
        using var dir = new TempDir();
        string checkpoint = Fixtures.Tiny("cls_relpos"), fp32 = Path.Combine(dir, "fp32.zip"), int8 = Path.Combine(dir, "int8.zip");
        Assert.Equal(0, Run("package", checkpoint, "--task", "image-classification", "--out", fp32).Code);
        var package = Run("package", checkpoint, "--task", "image-classification", "--out", int8, "--precision", "int8");
        Assert.Equal(0, package.Code);
        Assert.Contains("Int8", package.Stdout);
        output.WriteLine($"model.zip: float32 {new FileInfo(fp32).Length} B, int8 {new FileInfo(int8).Length} B");
        Assert.True(new FileInfo(int8).Length < new FileInfo(fp32).Length);
        Assert.NotEqual(0, Run("package", checkpoint, "--task", "image-classification", "--out", int8, "--precision", "float16").Code);

        // Softmax turns logit errors of at most δ into |Δpᵢ| ≤ pᵢ·(|Δzᵢ| + Σⱼ pⱼ|Δzⱼ|) ≤ 2δ·pᵢ (first order); δ is the int8 bound
        // for this model at the scale of its logits on the fixture's inputs (the random tiny model's top-1 has near-ties,
        // so labels alone are not a fair check).
        var (config, tensors) = Microsoft.ML.Beit.Checkpoints.BeitCheckpoint.Load(checkpoint);
        var io = PipelineData.Io("cls_relpos");
        double delta = QuantizationBounds.Int8LogitBound(config, tensors, io["logits"].ToFloatArray(), reduceRange: false);
        string[] images = PipelineData.PhotoPaths();
        var a = Parse(Run(["predict", "--model", fp32, "--top-k", "5", "--json", .. images]).Stdout);
        var b = Parse(Run(["predict", "--model", int8, "--top-k", "5", "--json", .. images]).Stdout);
        Assert.Equal(images.Length, b.Count);
        for (int i = 0; i < images.Length; i++)
        {
            var q = b[i].Predictions.ToDictionary(p => p.Label, p => p.Probability);
            foreach (var (label, p) in a[i].Predictions)
                Assert.True(Math.Abs(q[label] - p) <= 2 * delta * p, $"{images[i]} {label}: float32 {p}, int8 {q[label]}, bound {2 * delta * p}");
        }

        string onnx = Path.Combine(dir, "int8.onnx");
        var export = Run("export-onnx", checkpoint, onnx, "--task", "image-classification", "--precision", "int8");
        Assert.Equal(0, export.Code);
        Assert.Contains("Int8", export.Stdout);
        using var session = new Microsoft.ML.Beit.Scoring.BeitOnnxSession(onnx);
        Assert.Equal("Int8", session.Metadata[Microsoft.ML.Beit.Onnx.BeitOnnxNames.MetadataPrecision]);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void PackageThenPredictWithBothEnginesAndBothModelForms()
    {
        using var dir = new TempDir();
        string checkpoint = Fixtures.Tiny("cls_relpos"), zip = Path.Combine(dir, "model.zip");
        var package = Run("package", checkpoint, "--task", "image-classification", "--out", zip);
        Assert.Equal(0, package.Code);
        Assert.Contains("Score, PredictedLabel (5 labels)", package.Stdout);
        TestZips.AssertZipIsSelfContained(zip, dir);

        string folder = Path.Combine(dir, "images");
        Directory.CreateDirectory(folder);
        foreach (var name in new[] { "camera.png", "coffee.png" }) File.Copy(Fixtures.Preproc(name), Path.Combine(folder, name));
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "not an image: skipped");
        string chelsea = Fixtures.Preproc("chelsea.png");

        var fromZip = Parse(Run("predict", "--model", zip, "--top-k", "3", "--json", chelsea, folder).Stdout);
        Assert.Equal([chelsea, Path.Combine(folder, "camera.png"), Path.Combine(folder, "coffee.png")], fromZip.Select(r => r.Source));
        string[] names = ["cat", "dog", "bird", "fish", "horse"];
        foreach (var (_, predictions) in fromZip)
        {
            Assert.Equal(3, predictions.Count);
            Assert.All(predictions, p => Assert.Contains(p.Label, names));
            Assert.Equal(predictions.Select(p => p.Probability).OrderByDescending(p => p), predictions.Select(p => p.Probability));
        }

        // The checkpoint folder through the same pipeline built in memory: identical.
        var fromFolder = Parse(Run("predict", "--model", checkpoint, "--top-k", "3", "--json", chelsea, folder).Stdout);
        Assert.Equal(fromZip.Count, fromFolder.Count);
        for (int i = 0; i < fromZip.Count; i++)
        {
            Assert.Equal(fromZip[i].Source, fromFolder[i].Source);
            Assert.Equal(fromZip[i].Predictions, fromFolder[i].Predictions);
        }

        // TorchSharp from the checkpoint folder, same preprocessing: the same labels, probabilities within tolerance.
        var torch = Parse(Run("predict", "--model", checkpoint, "--engine", "torch", "--top-k", "5", "--json", chelsea, folder).Stdout);
        var all = Parse(Run("predict", "--model", zip, "--top-k", "5", "--json", chelsea, folder).Stdout);
        float max = 0;
        for (int i = 0; i < all.Count; i++)
        {
            Assert.Equal(all[i].Predictions.Select(p => p.Label), torch[i].Predictions.Select(p => p.Label));
            max = Math.Max(max, all[i].Predictions.Zip(torch[i].Predictions).Max(p => Math.Abs(p.First.Probability - p.Second.Probability)));
        }
        output.WriteLine($"onnx vs torch engine: max abs probability diff {max:E2}");
        Assert.True(max <= EngineTolerance, $"{max}");

        var text = Run("predict", "--model", zip, "--top-k", "1", chelsea);
        Assert.Equal(0, text.Code);
        Assert.Equal($"{chelsea}\n  {fromZip[0].Predictions[0].Probability,8:F4}  {fromZip[0].Predictions[0].Label}\n", text.Stdout.Replace("\r\n", "\n"));
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void PackageOtherTasksAndClearErrors()
    {
        using var dir = new TempDir();
        string features = Path.Combine(dir, "features.zip"), segmentation = Path.Combine(dir, "seg.zip");
        Assert.Contains("Features (32 floats)", Run("package", Fixtures.Tiny("cls_relpos"), "--task", "features", "--out", features).Stdout);
        Assert.Contains("PredictedLabel, PredictedLabelSize (6 classes)", Run("package", Fixtures.Tiny("seg_uper"), "--task", "semantic-segmentation", "--out", segmentation).Stdout);

        var wrongModel = Run("package", Fixtures.Tiny("seg_uper"), "--task", "image-classification", "--out", Path.Combine(dir, "x.zip"));
        Assert.Equal(1, wrongModel.Code);
        Assert.Contains("is a BeitForSemanticSegmentation checkpoint; it needs an image-classification model", wrongModel.Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "x.zip")));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));

        // beit predict scores every task: a features model prints the embedding.
        var embedding = Run("predict", "--model", features, "--json", Fixtures.Preproc("camera.png"));
        Assert.Equal(0, embedding.Code);
        using (var doc = JsonDocument.Parse(embedding.Stdout))
            Assert.Equal(32, doc.RootElement[0].GetProperty("features").GetArrayLength());

        string missing = Path.Combine(dir, "gone.png");
        File.WriteAllBytes(Path.Combine(dir, "broken.png"), [0x89, 0x50, 0x4E, 0x47]);
        var missingImage = Run("predict", "--model", Fixtures.Tiny("cls_relpos"), missing);
        Assert.Equal(1, missingImage.Code);
        Assert.Contains($"'{missing}' is neither an image file nor a folder", missingImage.Stderr);
        var broken = Run("predict", "--model", Fixtures.Tiny("cls_relpos"), Fixtures.Preproc("camera.png"), Path.Combine(dir, "broken.png"));
        Assert.Equal(1, broken.Code);
        // The good image is still printed; the bad one gets an error entry, and the exit code says something failed.
        Assert.Contains(Fixtures.Preproc("camera.png"), broken.Stdout);
        Assert.Contains($"Column 'ImagePath' ('{Path.Combine(dir, "broken.png")}'): cannot decode the image: the image is truncated", broken.Stderr);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ClassifyImagesSampleRunsOnItsBundledDefault()
    {
        var (code, stdout, stderr) = DotnetProcess.Run(DotnetProcess.Built("samples/ClassifyImages", "ClassifyImages.dll"), []);
        output.WriteLine(stdout);
        Assert.True(code == 0, stderr);
        var lines = stdout.Replace("\r\n", "\n").Split('\n');
        int inMemory = Array.IndexOf(lines, "In memory:"), reloaded = Array.IndexOf(lines, "Reloaded, one image at a time with a PredictionEngine:");
        Assert.True(inMemory > 0 && reloaded > inMemory);
        // The reloaded model predicts exactly what the in-memory pipeline did, image for image.
        Assert.Equal(lines[(inMemory + 1)..(inMemory + 5)], lines[(reloaded + 1)..(reloaded + 5)]);
        Assert.Contains("chelsea.png", lines[inMemory + 3]);
    }
}
