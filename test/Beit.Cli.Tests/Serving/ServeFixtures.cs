using System.Text.Json;
using Beit.Tests.Estimators;

namespace Beit.Tests.Serving;

/// <summary>The images every serving test sends: the preprocessing fixtures (PNG photos, RGBA, a thin strip, segmentation scenes).</summary>
internal static class ServeImages
{
    public static readonly string[] Names = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rgba_small.png", "thin.png", "seg_a.png", "seg_b.png"];

    public static string[] Paths() => Names.Select(Fixtures.Preproc).ToArray();

    /// <summary>Runs the tool to completion (package, predict) and fails with its stderr when it fails.</summary>
    public static string Run(params string[] args)
    {
        var (code, stdout, stderr) = DotnetProcess.Run(ServeProcess.Beit, args);
        Assert.True(code == 0, $"beit {string.Join(' ', args)} → {code}: {stderr}");
        return stdout;
    }

    /// <summary><c>beit predict --json</c> parsed: per source, the predictions element as JSON text (compared byte for byte with the server's).</summary>
    public static Dictionary<string, List<(string Label, float Probability)>> PredictJson(string model, int topK, string[] images)
    {
        using var doc = JsonDocument.Parse(Run(["predict", "--model", model, "--json", "--top-k", topK.ToString(), .. images]));
        return doc.RootElement.EnumerateArray().ToDictionary(e => e.GetProperty("source").GetString()!, Predictions);
    }

    /// <summary>The <c>predictions</c> array of a <c>beit predict --json</c> element or of a <c>/v1/predict</c> answer.</summary>
    public static List<(string Label, float Probability)> Predictions(JsonElement element)
    {
        return element.GetProperty("predictions").EnumerateArray().Select(p =>
        {
            Assert.Equal(["label", "probability"], p.EnumerateObject().Select(x => x.Name));
            return (p.GetProperty("label").GetString()!, p.GetProperty("probability").GetSingle());
        }).ToList();
    }
}

/// <summary>One classifier server for a test class: the tiny classifier packaged by <c>beit package</c>, and what <c>beit predict --json</c> says about each image.</summary>
public sealed class ClassifierServer : IDisposable
{
    private readonly TempDir _dir = new();

    public ClassifierServer()
    {
        Zip = _dir.Combine("cls.zip");
        ServeImages.Run("package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", Zip);
        Expected = ServeImages.PredictJson(Zip, 5, ServeImages.Paths());
        // A small body limit so the 413 test needs only a small body; every fixture image fits.
        Server = ServeProcess.Start(Zip, "--max-body-bytes", MaxBodyBytes.ToString());
    }

    public const long MaxBodyBytes = 1 << 20;

    public string Zip { get; }

    internal ServeProcess Server { get; }

    /// <summary>beit predict --json --top-k 5, by image path.</summary>
    public Dictionary<string, List<(string Label, float Probability)>> Expected { get; }

    public void Dispose()
    {
        Server.Dispose();
        _dir.Dispose();
    }
}
