using System.Text.Json;
using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary><c>beit explain</c>, run as the real tool in a separate process, against the library's maps.</summary>
public sealed class CliExplainTests(ITestOutputHelper output)
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    private (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var result = DotnetProcess.Run(Beit, args);
        output.WriteLine($"beit {string.Join(' ', args.Select(Path.GetFileName))} → {result.ExitCode}{(result.Stderr.Length > 0 ? ": " + result.Stderr.Trim() : "")}");
        return result;
    }

    private static (string Method, int Layer, float[][] Map) Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Assert.Equal(["method", "layer", "height", "width", "map"], root.EnumerateObject().Select(p => p.Name));
        var map = root.GetProperty("map").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        Assert.Equal(root.GetProperty("height").GetInt32(), map.Length);
        Assert.All(map, r => Assert.Equal(root.GetProperty("width").GetInt32(), r.Length));
        return (root.GetProperty("method").GetString()!, root.GetProperty("layer").GetInt32(), map);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ExplainWritesTheHeatMapAndTheGridFromAFolderAndAZip()
    {
        using var dir = new TempDir();
        string checkpoint = Fixtures.Tiny("cls_relpos"), chelsea = Fixtures.Preproc("chelsea.png");
        string heat = Path.Combine(dir, "heat.png"), zip = Path.Combine(dir, "model.zip");

        var run = Run("explain", checkpoint, chelsea, "--out", heat, "--json");
        Assert.Equal(0, run.Code);
        var (method, layer, map) = Parse(run.Stdout);
        Assert.Equal(("rollout", 3), (method, layer));
        var png = ImageDecoder.Decode(heat);
        var image = ImageDecoder.Decode(chelsea);
        Assert.Equal((image.Width, image.Height), (png.Width, png.Height));

        // The same numbers as the library (JSON writes floats round-trip exact).
        using (var explainer = BeitAttentionExplainer.FromCheckpoint(checkpoint))
        {
            var expected = explainer.Explain(image).Map(BeitAttentionMethod.Rollout);
            Assert.Equal(expected, map.SelectMany(r => r).ToArray());
        }

        // A packaged model.zip gives the same CLS map as its checkpoint.
        Assert.Equal(0, Run("package", checkpoint, "--task", "image-classification", "--out", zip).Code);
        var fromZip = Parse(Run("explain", zip, chelsea, "--method", "cls", "--layer", "1", "--json").Stdout);
        var fromFolder = Parse(Run("explain", checkpoint, chelsea, "--method", "cls", "--layer", "1", "--json").Stdout);
        Assert.Equal(("cls", 1), (fromZip.Method, fromZip.Layer));
        Assert.Equal(fromFolder.Map.SelectMany(r => r), fromZip.Map.SelectMany(r => r));

        var text = Run("explain", zip, chelsea, "--out", heat);
        Assert.Equal(0, text.Code);
        Assert.Contains("attention rollout through layer 3, 4x4 patches", text.Stdout);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void BadArgumentsGetClearErrors()
    {
        using var dir = new TempDir();
        string checkpoint = Fixtures.Tiny("cls_relpos"), chelsea = Fixtures.Preproc("chelsea.png");

        var noOutput = Run("explain", checkpoint, chelsea);
        Assert.Equal(2, noOutput.Code);
        Assert.Contains("--out", noOutput.Stderr);

        var badLayer = Run("explain", checkpoint, chelsea, "--json", "--layer", "4");
        Assert.Equal(2, badLayer.Code);
        Assert.Contains("--layer must be between 0 and 3", badLayer.Stderr);

        string notImage = Path.Combine(dir, "x.png");
        File.WriteAllText(notImage, "not a png");
        var badImage = Run("explain", checkpoint, notImage, "--json");
        Assert.Equal(1, badImage.Code);
        Assert.StartsWith("beit explain: ", badImage.Stderr);

        var missing = Run("explain", Path.Combine(dir, "nope.zip"), chelsea, "--json");
        Assert.Equal(1, missing.Code);
        Assert.Contains("does not exist", missing.Stderr);

        var notZip = Run("explain", notImage, chelsea, "--json");
        Assert.Equal(1, notZip.Code);
        Assert.Contains("not a zip archive", notZip.Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "heat.png")));
    }
}
