using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Beit.Estimators;
using Xunit.Abstractions;

namespace Beit.Tests.Estimators;

/// <summary>
/// Saved pipelines load and run in a separate process that never touched our types before <c>Model.Load</c>, with
/// bit-identical results; the zip holds the ONNX model and no absolute paths.
/// </summary>
public sealed class ModelPersistenceTests(ITestOutputHelper output)
{
    private static readonly string[] Images = [Fixtures.Preproc("chelsea.png"), Fixtures.Preproc("camera.png")];

    public static TheoryData<string> Stages => new() { "classifier", "featurizer", "segmenter" };

    /// <summary>The pipeline of each stage kind and the output columns compared across processes.</summary>
    private static (IEstimator<ITransformer> Pipeline, string[] Columns) Pipeline(MLContext ml, string kind) => kind switch
    {
        // load images → process → classify → map the key to its value
        "classifier" => (ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel")), ["Score", "PredictedLabel"]),
        "featurizer" => (ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitFeaturizer(new BeitFeaturizerEstimator.Options
            {
                Model = Fixtures.Tiny("cls_relpos"),
                ClsTokenColumnName = "ClsToken",
                PatchTokensColumnName = "PatchTokens",
            })), ["Features", "ClsToken", "PatchTokens"]),
        "segmenter" => (ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("seg_uper")))
            .Append(ml.Transforms.BeitSegmenter(new BeitSegmenterEstimator.Options
            {
                Model = Fixtures.Tiny("seg_uper"),
                ScoreColumnName = "Score",
            })), ["PredictedLabel", "PredictedLabelSize", "Score"]),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Trait("Category", "Slow")]
    [Theory]
    [MemberData(nameof(Stages))]
    public void SavedPipelineGivesIdenticalResultsInAFreshProcess(string kind)
    {
        var ml = new MLContext(seed: 1);
        var data = PipelineData.Paths(ml, Images);
        var (pipeline, columns) = Pipeline(ml, kind);
        using var dir = new TempDir();
        string zip = Path.Combine(dir, "model.zip");
        Dictionary<string, object[]> expected;
        using (var model = (IDisposable)pipeline.Fit(data))
        {
            var transformer = (ITransformer)model;
            ml.Model.Save(transformer, data.Schema, zip);
            var scored = transformer.Transform(data);
            expected = columns.ToDictionary(c => c, c => Read(scored, c));
        }
        AssertZipIsSelfContained(zip, dir);

        var sw = Stopwatch.StartNew();
        using var result = JsonDocument.Parse(RunModelLoadCheck(zip, columns, Images));
        output.WriteLine($"{kind}: separate process ran in {sw.Elapsed.TotalSeconds:F1} s");
        var root = result.RootElement;
        Assert.False(root.GetProperty("beitLoadedBeforeLoad").GetBoolean(), "the check process loaded Microsoft.ML.Beit before Model.Load");
        Assert.True(root.GetProperty("beitLoadedAfterLoad").GetBoolean(), "Model.Load did not load Microsoft.ML.Beit by name");
        Assert.Equal(["ImagePath"], root.GetProperty("inputColumns").EnumerateArray().Select(e => e.GetString()));
        Assert.True(root.GetProperty("engineFirstRowFirstColumnMatches").GetBoolean(), "PredictionEngine on the loaded model differs from the cursor");
        var rows = root.GetProperty("rows").EnumerateArray().ToArray();
        Assert.Equal(Images.Length, rows.Length);
        foreach (var column in columns)
        {
            for (int r = 0; r < rows.Length; r++)
            {
                var actual = rows[r].GetProperty(column);
                object want = expected[column][r];
                switch (want)
                {
                    case float[] f:
                        var got = actual.EnumerateArray().Select(e => e.GetSingle()).ToArray();
                        Assert.Equal(f.Length, got.Length);
                        Assert.True(f.AsSpan().SequenceEqual(got), $"{kind}: {column} row {r} differs across processes");
                        break;
                    case int[] i:
                        Assert.Equal(i, actual.EnumerateArray().Select(e => e.GetInt32()).ToArray());
                        break;
                    case string s:
                        Assert.Equal(s, actual.GetString());
                        break;
                }
            }
            output.WriteLine($"{kind}: {column} identical in both processes ({Describe(expected[column][0])} per row)");
        }
    }

    [Fact]
    public void ConfigurationPathsDoNotReachTheZip()
    {
        // Hugging Face's config.json often says where the checkpoint was loaded from.
        var ml = new MLContext();
        var (config, tensors) = Microsoft.ML.Beit.Checkpoints.BeitCheckpoint.Load(Fixtures.Tiny("cls_relpos"));
        string where = Path.Combine(Fixtures.Root, "somewhere", "beit-base");
        config.ExtraFields["_name_or_path"] = where;
        var data = PipelineData.Paths(ml, Images);
        using var dir = new TempDir();
        string zip = Path.Combine(dir, "model.zip");
        using (var model = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(new BeitClassifierEstimator.Options { Model = BeitModelSource.FromTensors(config, tensors) }))
            .Fit(data))
        {
            ml.Model.Save(model, data.Schema, zip);
        }
        AssertZipIsSelfContained(zip, dir);
    }

    private static string Describe(object value) => value switch
    {
        float[] f => $"{f.Length} floats",
        int[] i => $"{i.Length} ints",
        _ => $"'{value}'",
    };

    private static object[] Read(IDataView data, string column)
    {
        var type = data.Schema[column].Type;
        if (type is Microsoft.ML.Data.TextDataViewType)
            return PipelineData.Strings(data, column).Cast<object>().ToArray();
        if (type is Microsoft.ML.Data.VectorDataViewType { ItemType: var item } && item == Microsoft.ML.Data.NumberDataViewType.Int32)
            return PipelineData.Ints(data, column).Cast<object>().ToArray();
        return PipelineData.Floats(data, column).Cast<object>().ToArray();
    }

    /// <summary>The zip embeds the ONNX model and names no absolute path (see <see cref="TestZips.AssertZipIsSelfContained"/>).</summary>
    internal static void AssertZipIsSelfContained(string zip, string tempDir) => TestZips.AssertZipIsSelfContained(zip, tempDir);

    /// <summary>Runs <c>test/Beit.ModelLoadCheck</c> (built with this project, configuration for configuration) and returns its stdout.</summary>
    internal static string RunModelLoadCheck(string zip, string[] columns, string[] images)
    {
        var (code, stdout, stderr) = DotnetProcess.Run(DotnetProcess.Built("test/Beit.ModelLoadCheck", "Beit.ModelLoadCheck.dll"),
            [zip, string.Join(",", columns), .. images]);
        Assert.True(code == 0, $"Beit.ModelLoadCheck failed ({code}): {stderr}");
        return stdout;
    }
}
