using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;

namespace Beit.Tests.Scoring;

/// <summary><see cref="BeitBatchScorer"/>, <see cref="BeitShard"/>, <see cref="BeitImageFiles"/> and <see cref="BeitTritonExport"/> in process.</summary>
public sealed class BeitBatchScorerTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] s_photos = ["chelsea.png", "camera.png", "coffee.png", "astronaut.png"];

    /// <summary>The photos and one truncated PNG (third), in a folder.</summary>
    private string[] Images()
    {
        var paths = s_photos.Select(p => Path.Combine(_dir, p)).ToList();
        foreach (var p in s_photos) File.Copy(Fixtures.Preproc(p), Path.Combine(_dir, p));
        string broken = Path.Combine(_dir, "broken.png");
        File.WriteAllBytes(broken, File.ReadAllBytes(Fixtures.Preproc("coffee.png"))[..500]);
        paths.Insert(2, broken);
        return [.. paths];
    }

    internal static string SegmentationZip(string dir) => TestZips.SegmentationZip(dir);

    [Trait("Category", "Slow")]
    [Fact]
    public void ClassificationMatchesTheMLNetPipelineAtEveryBatchSizeAndKeepsGoodImagesOfABadBatch()
    {
        var images = Images();
        string zip = Safety.ModelZipTests.TinyZip(_dir);
        // The ML.NET pipeline the zip holds, one image at a time, as the reference.
        var ml = new MLContext();
        using var loaded = (IDisposable)BeitModelZip.Load(ml, zip, out _);
        var engine = ml.Model.CreatePredictionEngine<ImagePathRow, ScoreRow>((ITransformer)loaded);
        var reference = images.Select(p => p.Contains("broken") ? null : engine.Predict(new ImagePathRow { ImagePath = p }).Score).ToArray();

        foreach (int batch in new[] { 1, 2, 5 })
        {
            using var scorer = BeitBatchScorer.Load(zip, new BeitBatchScorerOptions { BatchSize = batch, DecodeThreads = 2 });
            Assert.Equal(BeitScoringTask.ImageClassification, scorer.Task);
            Assert.Equal(["cat", "dog", "bird", "fish", "horse"], scorer.LabelNames);
            var results = scorer.Score(images).ToList();
            Assert.Equal(images, results.Select(r => r.Source));
            for (int i = 0; i < images.Length; i++)
            {
                if (reference[i] == null)
                {
                    Assert.Null(results[i].Probabilities);
                    Assert.Contains("cannot decode the image: the image is truncated", results[i].Error);
                    continue;
                }
                Assert.Null(results[i].Error);
                Assert.True(TestMath.MaxAbsDiff(results[i].Probabilities, reference[i]) <= 1e-5f, $"batch {batch}, {images[i]}");
            }
        }
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void SegmentationGivesTheSegmentersLabelMapsAtEachImagesSize()
    {
        var images = Images().Where(p => !p.Contains("broken")).ToArray();
        string zip = SegmentationZip(_dir);
        var ml = new MLContext();
        using var loaded = (IDisposable)BeitModelZip.Load(ml, zip, out _);
        var engine = ml.Model.CreatePredictionEngine<ImagePathRow, LabelMapRow>((ITransformer)loaded);
        using var scorer = BeitBatchScorer.Load(zip, new BeitBatchScorerOptions { BatchSize = 3 });
        Assert.Equal(BeitScoringTask.SemanticSegmentation, scorer.Task);
        var results = scorer.Score(images).ToList();
        for (int i = 0; i < images.Length; i++)
        {
            var expected = engine.Predict(new ImagePathRow { ImagePath = images[i] });
            var decoded = ImageDecoder.Decode(images[i]);
            Assert.Equal(new PixelSize(decoded.Height, decoded.Width), results[i].LabelMapSize);
            Assert.Equal(expected.Size, new[] { results[i].LabelMapSize.Height, results[i].LabelMapSize.Width });
            Assert.Equal(expected.Labels, results[i].LabelMap);
            Assert.Equal(decoded.Pixels, results[i].Image!.Pixels);
        }
    }

    [Fact]
    public void ScoringIsLazyOverAnEndlessStreamOfPaths()
    {
        string photo = Fixtures.Preproc("chelsea.png");
        int produced = 0;
        IEnumerable<string> Endless()
        {
            while (true)
            {
                Interlocked.Increment(ref produced);
                yield return photo;
            }
        }
        using var scorer = BeitBatchScorer.Load(Safety.ModelZipTests.TinyZip(_dir), new BeitBatchScorerOptions { BatchSize = 2, PrefetchBatches = 2 });
        var first = scorer.Score(Endless()).Take(5).ToList();
        Assert.Equal(5, first.Count);
        Assert.All(first, r => Assert.Equal(first[0].Probabilities, r.Probabilities));
        // Three consumed batches plus at most the prefetched ones (and one being written) were ever enumerated.
        Assert.True(Volatile.Read(ref produced) <= 2 * (3 + 2 + 1), $"{produced} paths were enumerated for 5 results");
    }

    [Fact]
    public void ShardsPartitionTheFilesWithoutOverlap()
    {
        var names = Enumerable.Range(0, 300).Select(i => $"d{i % 7}/img_{i}.jpg").ToArray();
        var shards = Enumerable.Range(0, 4).Select(i => names.Where(new BeitShard(i, 4).Contains).ToHashSet()).ToArray();
        Assert.Equal(names.Length, shards.Sum(s => s.Count));
        Assert.Equal(names.ToHashSet(), shards.SelectMany(s => s).ToHashSet());
        Assert.All(shards, s => Assert.InRange(s.Count, 40, 110));
        // Stable across processes and machines: a fixed hash, not string.GetHashCode.
        Assert.True(new BeitShard(1, 2).Contains("a.png") ^ new BeitShard(0, 2).Contains("a.png"));
        Assert.Equal(new BeitShard(2, 5), BeitShard.Parse("2/5"));
        foreach (var bad in new[] { "5/5", "-1/2", "1", "a/b", "0/0", "1/2/3", " 0/2" })
            Assert.Throws<FormatException>(() => BeitShard.Parse(bad));
    }

    [Fact]
    public void ReadScoredSourcesDropsACutOffLastLine()
    {
        string file = Path.Combine(_dir, "out.jsonl");
        Assert.Empty(BeitImageFiles.ReadScoredSources(file));
        File.WriteAllText(file, "{\"source\":\"a.png\",\"predictions\":[]}\n{\"error\":\"x\",\"source\":\"b\\u0027.png\"}\nnot json\n{\"source\":\"c.png\",\"predic");
        var done = BeitImageFiles.ReadScoredSources(file);
        Assert.Equal(new HashSet<string> { "a.png", "b'.png" }, done);
        Assert.EndsWith("not json\n", File.ReadAllText(file));
        Assert.Equal(done, BeitImageFiles.ReadScoredSources(file));
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void TritonRepositoryHasTheDeclaredConfigAndGraph()
    {
        string zip = Safety.ModelZipTests.TinyZip(_dir);
        string repo = Path.Combine(_dir, "repo");
        string folder = BeitTritonExport.Write(zip, repo, new BeitTritonExportOptions { MaxBatchSize = 16 });
        Assert.Equal(Path.Combine(repo, "model"), folder);
        Assert.Equal("""
            name: "model"
            platform: "onnxruntime_onnx"
            max_batch_size: 16
            input [
              {
                name: "pixel_values"
                data_type: TYPE_FP32
                dims: [ 3, 32, 32 ]
              }
            ]
            output [
              {
                name: "probabilities"
                data_type: TYPE_FP32
                dims: [ 5 ]
                label_filename: "labels.txt"
              }
            ]
            dynamic_batching { }

            """.ReplaceLineEndings("\n"), File.ReadAllText(Path.Combine(folder, "config.pbtxt")));
        Assert.Equal("cat\ndog\nbird\nfish\nhorse\n", File.ReadAllText(Path.Combine(folder, "labels.txt")));
        Assert.Equal(["1", "config.pbtxt", "labels.txt", "preprocessor_config.json"], Directory.GetFileSystemEntries(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using var session = new InferenceSession(Path.Combine(folder, "1", "model.onnx"));
        var input = Assert.Single(session.InputMetadata);
        Assert.Equal("pixel_values", input.Key);
        Assert.Equal([-1, 3, 32, 32], input.Value.Dimensions);
        var output = Assert.Single(session.OutputMetadata);
        Assert.Equal("probabilities", output.Key);
        Assert.Equal([-1, 5], output.Value.Dimensions);

        // Two images in one batch give what beit predict gives.
        using var scorer = BeitBatchScorer.Load(zip);
        string[] photos = [Fixtures.Preproc("chelsea.png"), Fixtures.Preproc("camera.png")];
        var expected = scorer.Score(photos).SelectMany(r => r.Probabilities!).ToArray();
        var pixels = photos.SelectMany(p => scorer.Processor.Preprocess(ImageDecoder.Decode(p))).ToArray();
        using var value = OrtValue.CreateTensorValueFromMemory(pixels, [2, 3, 32, 32]);
        using var results = session.Run(new RunOptions(), ["pixel_values"], [value], ["probabilities"]);
        Assert.True(TestMath.MaxAbsDiff(results[0].GetTensorDataAsSpan<float>(), expected) <= 1e-6f);

        // Segmentation: logits [classes, h, w] and no label_filename; writing again replaces the folder whole.
        BeitTritonExport.Write(SegmentationZip(_dir), repo, new BeitTritonExportOptions { Name = "model" });
        string seg = File.ReadAllText(Path.Combine(folder, "config.pbtxt"));
        // UperNet's logits are at its finest FPN level: the 8×8 patch grid upsampled 4×, so 32×32 for this patch-8 model.
        Assert.Contains("    name: \"logits\"\n    data_type: TYPE_FP32\n    dims: [ 6, 32, 32 ]\n  }", seg);
        using (var segSession = new InferenceSession(Path.Combine(folder, "1", "model.onnx")))
        {
            Assert.Equal([-1, 3, 64, 64], segSession.InputMetadata["pixel_values"].Dimensions);
            Assert.Equal([-1, 6, 32, 32], Assert.Single(segSession.OutputMetadata, o => o.Key == "logits").Value.Dimensions);
        }
        Assert.DoesNotContain("label_filename", seg);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(folder, "labels.txt")).Length);
        Assert.Empty(Directory.GetFiles(repo, "*.tmp"));
        Assert.Throws<ArgumentException>(() => BeitTritonExport.Write(zip, repo, new BeitTritonExportOptions { Name = "../evil" }));
    }

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = [];
    }

    private sealed class LabelMapRow
    {
        [ColumnName("PredictedLabel")]
        public int[] Labels { get; set; } = [];

        [ColumnName("PredictedLabelSize")]
        public int[] Size { get; set; } = [];
    }
}
