using System.Text.Json;
using System.Text.Json.Nodes;
using Beit.Tests.Docs;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary>
/// <c>beit train --input bytes</c> writes a Model Builder-style model.zip (string <c>PredictedLabel</c>), its
/// consumption code and a replay file: the code compiles against the zip in a fresh application and predicts what
/// <c>beit predict</c> predicts, and <c>beit train --config</c> replays the same options.
/// </summary>
[Trait("Category", "Slow")]
public sealed class CliTrainConsumptionTests(ITestOutputHelper output)
{
    private static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    private (int Code, string Stdout, string Stderr) Run(string workingDirectory, params string[] args)
    {
        var result = DotnetProcess.Run(Beit, args, workingDirectory);
        output.WriteLine($"beit {string.Join(' ', args)} → {result.ExitCode}\n{result.Stdout}{result.Stderr}");
        return result;
    }

    [Fact]
    public void GeneratedConsumptionCodeCompilesAgainstTheZipAndPredictsAndTheConfigReplays()
    {
        using var dir = new TempDir();
        // Two classes of photos, six copies each: enough for a 1-epoch run with a test split.
        string images = Path.Combine(dir, "images");
        foreach (var (label, fixture) in new[] { ("cat", "chelsea.png"), ("cup", "coffee.png") })
        {
            Directory.CreateDirectory(Path.Combine(images, label));
            for (int i = 0; i < 6; i++) File.Copy(Fixtures.Preproc(fixture), Path.Combine(images, label, $"{i}.png"));
        }
        string[] common = ["--input", "bytes", "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--threads", "1", "--test-fraction", "0.34"];
        var train = Run(dir, ["train", images, "--out", Path.Combine(dir, "pet-model.zip"), .. common]);
        Assert.True(train.Code == 0, train.Stderr);
        string zip = Path.Combine(dir, "pet-model.zip"), code = Path.Combine(dir, "pet-model.consumption.cs"), replay = Path.Combine(dir, "pet-model.beit.json");
        Assert.True(File.Exists(zip) && File.Exists(code) && File.Exists(replay), train.Stdout);

        // The replay file: every option, explicitly, with absolute paths.
        var config = JsonNode.Parse(File.ReadAllText(replay))!.AsObject();
        Assert.Equal(1, (int)config["beit-train-config"]!);
        Assert.Equal(Path.GetFullPath(images), (string)config["folder"]!);
        Assert.Equal("bytes", (string)config["input"]!);
        Assert.Equal(1, (int)config["epochs"]!);
        Assert.Equal(0.34, (double)config["test-fraction"]!);
        Assert.True(config.ContainsKey("lr") && config["lr"] is null, "options left to the trainer are recorded as null");

        // A fresh application: the generated code as it is, and a Main that predicts one image's bytes.
        string project = Path.Combine(dir, "consumer");
        Directory.CreateDirectory(project);
        ScratchProject.Write(project, "Consumer", training: false);
        File.Copy(code, Path.Combine(project, "PetModel.consumption.cs"));
        File.WriteAllText(Path.Combine(project, "Program.cs"), """
            using BeitModels;
            var input = new PetModel.ModelInput { ImageSource = File.ReadAllBytes(args[0]) };
            PetModel.ModelOutput prediction = PetModel.Predict(input);
            var all = PetModel.PredictAllLabels(input).ToList();
            Console.WriteLine($"predicted {prediction.PredictedLabel}");
            Console.WriteLine($"all {string.Join(" ", all.Select(kv => $"{kv.Key}={kv.Value:R}"))}");
            Console.WriteLine($"scores {string.Join(" ", prediction.Score.Select(s => s.ToString("R")))}");
            return 0;
            """);
        string dll = ScratchProject.Build(project, "Consumer");
        string photo = Path.Combine(images, "cat", "0.png");
        // Model Builder's code finds the zip by its file name in the current folder.
        var run = DotnetProcess.Run(dll, [photo], dir);
        output.WriteLine(run.Stdout + run.Stderr);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string predicted = lines.Single(l => l.StartsWith("predicted ", StringComparison.Ordinal))["predicted ".Length..];
        var all = lines.Single(l => l.StartsWith("all ", StringComparison.Ordinal))["all ".Length..].Split(' ')
            .Select(p => (Label: p[..p.IndexOf('=')], Score: float.Parse(p[(p.IndexOf('=') + 1)..], System.Globalization.CultureInfo.InvariantCulture))).ToList();
        Assert.Equal(["cat", "cup"], all.Select(a => a.Label).Order());
        Assert.Equal(predicted, all[0].Label);
        Assert.True(all[0].Score >= all[1].Score, "PredictAllLabels is sorted best first");
        Assert.InRange(all.Sum(a => a.Score), 1 - 1e-5, 1 + 1e-5);

        // beit predict reads the same zip (bytes input, string PredictedLabel) and agrees.
        var predict = Run(dir, "predict", "--model", zip, "--json", photo);
        Assert.True(predict.Code == 0, predict.Stderr);
        using (var doc = JsonDocument.Parse(predict.Stdout))
        {
            var top = doc.RootElement[0].GetProperty("predictions")[0];
            Assert.Equal(predicted, top.GetProperty("label").GetString());
            Assert.Equal(all[0].Score, top.GetProperty("probability").GetSingle(), 1e-6f);
        }

        // Replay: the same options from the file, with --out given on the command line winning.
        var again = Run(dir, "train", "--config", replay, "--out", Path.Combine(dir, "again.zip"));
        Assert.True(again.Code == 0, again.Stderr);
        var replayed = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "again.beit.json")))!.AsObject();
        config["out"] = Path.Combine(dir, "again.zip");
        Assert.Equal(config.ToJsonString(), replayed.ToJsonString());

        // A replay file with an unknown option is refused, naming the file and the option.
        File.WriteAllText(Path.Combine(dir, "bad.beit.json"), """{ "beit-train-config": 1, "epochz": 3 }""");
        var bad = Run(dir, "train", "--config", Path.Combine(dir, "bad.beit.json"));
        Assert.Equal(1, bad.Code);
        Assert.Contains("bad.beit.json': unknown option \"epochz\"", bad.Stderr);
    }
}
