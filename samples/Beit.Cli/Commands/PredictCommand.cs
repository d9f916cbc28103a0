using System.CommandLine;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;
using Microsoft.ML.Beit.Training;
using Beit.Cli;
using Microsoft.ML.Data;
using TorchSharp;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit predict --model &lt;model.zip | checkpoint-folder&gt; [--engine onnx|torch] [--top-k K] [--json | --jsonl [--out F [--resume]]]
/// [--batch-size N] [--shard i/n] &lt;image|folder&gt;...</c>: the top-k labels per image, the label map and overlay of a
/// segmenter, or an embedding, through <see cref="BeitBatchScorer"/> (ONNX Runtime) or the TorchSharp classifier, so
/// the two engines can be compared.
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A model.zip made by 'beit package' (image-classification, features or semantic-segmentation; or any saved classification pipeline), a Hugging Face checkpoint folder, or a Hub model id (org/name[@revision]).", Required = true };
        var engine = new Option<string>("--engine") { Description = "onnx (default): ONNX Runtime on the model's ML.NET graph; torch: the TorchSharp BeitForImageClassification (checkpoint folders only).", DefaultValueFactory = _ => "onnx" };
        engine.AcceptOnlyFromAmong("onnx", "torch");
        var topK = new Option<int>("--top-k") { Description = "How many labels to print per image (default 5).", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Write one JSON array of {\"source\", \"predictions\": [{\"label\", \"probability\"}]} instead of text ({\"source\", \"error\"} for an image that failed)." };
        var jsonl = new Option<bool>("--jsonl") { Description = "Stream one JSON object per line, as soon as each image is scored (the objects of --json), in constant memory." };
        var output = new Option<string?>("--out") { Description = "With --jsonl: append the lines to this file instead of stdout (segmentation PNGs go to its folder)." };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per ONNX Runtime run (default 1).", DefaultValueFactory = _ => 1 };
        var shard = new Option<string>("--shard") { Description = "i/n: score only slice i of n (0-based; by a hash of each file's path relative to its input folder), for array jobs.", DefaultValueFactory = _ => "0/1" };
        var resume = new Option<bool>("--resume") { Description = "With --jsonl --out: skip the images already in the file (a cut-off last line is dropped)." };
        var progress = new Option<bool>("--progress") { Description = "Show counts and img/s on stderr even when it is not a terminal (it is shown on a terminal anyway)." };
        var recursive = new Option<bool>("--recursive") { Description = "Search folders recursively." };
        var inputs = new Argument<string[]>("image|folder") { Description = "Image files, or folders whose images (png, jpg, jpeg, bmp, gif, webp) are all scored.", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("predict", "Score images: top-k labels, segmentation maps and overlays, or embeddings.") { model, engine, topK, json, jsonl, output, batchSize, shard, resume, progress, recursive, inputs };
        cmd.SetAction(pr =>
        {
            string modelPath = pr.GetValue(model)!, engineName = pr.GetValue(engine)!;
            int k = pr.GetValue(topK), batch = pr.GetValue(batchSize);
            bool lines = pr.GetValue(jsonl), again = pr.GetValue(resume);
            string? outFile = pr.GetValue(output);
            string? usage = k < 1 ? "--top-k must be at least 1."
                : batch < 1 || batch > 4096 ? "--batch-size must be 1 to 4096."
                : lines && pr.GetValue(json) ? "--json and --jsonl exclude each other."
                : outFile != null && !lines ? "--out needs --jsonl."
                : again && outFile == null ? "--resume needs --jsonl --out <file>."
                : null;
            BeitShard slice = BeitShard.All;
            try
            {
                slice = BeitShard.Parse(pr.GetValue(shard)!);
            }
            catch (FormatException e)
            {
                usage ??= "--shard: " + e.Message;
            }
            bool scaleFlags = lines || batch != 1 || slice != BeitShard.All;
            if (usage == null && engineName == "torch" && scaleFlags) usage = "--jsonl, --batch-size and --shard need --engine onnx.";
            if (usage != null)
            {
                Console.Error.WriteLine($"beit predict: {usage}");
                return 2;
            }
            var sources = pr.GetValue(inputs)!;
            modelPath = HubModels.Local(modelPath);
            if (engineName != "torch")
            {
                BeitBatchScorer? scorer = null;
                try
                {
                    scorer = BeitBatchScorer.Load(modelPath, new BeitBatchScorerOptions { BatchSize = batch });
                }
                catch (NotSupportedException) when (!scaleFlags)
                {
                    // Some other saved classification pipeline: ML.NET scores it as it is.
                }
                if (scorer != null)
                {
                    using (scorer)
                        return BatchScoring.Run(scorer, new BatchScoring.Settings(sources, slice, pr.GetValue(recursive), k, pr.GetValue(json), lines, outFile, again, pr.GetValue(progress)));
                }
            }
            var images = BeitImageFiles.Enumerate(sources, BeitShard.All).Select(f => f.Path).ToList();
            if (images.Count == 0) throw new ArgumentException("No images to classify (folders are searched for png, jpg, jpeg, bmp, gif and webp files).");
            var (labels, scored) = engineName == "torch" ? PredictTorch(modelPath, images) : PredictOnnx(modelPath, images);
            var results = images.Select((source, i) => new Result(source, scored[i].Probabilities is { } p ? Top(labels, p, k) : null, scored[i].Error)).ToList();
            if (pr.GetValue(json)) WriteJson(results);
            else WriteText(results);
            int failed = results.Count(r => r.Error != null);
            if (failed == 0) return 0;
            Console.Error.WriteLine($"beit predict: {failed} of {results.Count} images failed; the first: {results.First(r => r.Error != null).Error}");
            return CliErrors.Failed;
        });
        return cmd;
    }

    /// <summary>One image's probabilities, or why it could not be scored.</summary>
    private readonly record struct Scored(float[]? Probabilities, string? Error);

    private sealed record Result(string Source, (string Label, float Probability)[]? Top, string? Error);

    internal static (string Label, float Probability)[] Top(IReadOnlyList<string> labels, float[] probabilities, int k) =>
        probabilities.Select((p, i) => (labels[i], p))
            .OrderByDescending(x => x.p).ThenBy(x => Array.IndexOf(probabilities, x.p))
            .Take(k).ToArray();

    // ---------------------------------------------------------------- ONNX Runtime through the ML.NET pipeline

    private static (IReadOnlyList<string>, List<Scored>) PredictOnnx(string modelPath, List<string> images)
    {
        var ml = new MLContext();
        if (Directory.Exists(modelPath))
        {
            // A checkpoint folder: the same pipeline 'beit package' saves, built in memory, but with an error column,
            // so one bad image costs only its own row.
            var data = Paths(ml, images, PackageCommand.InputColumn);
            using var fitted = ml.Transforms.LoadBeitImages(new LoadBeitImagesEstimator.Options { InputColumnName = PackageCommand.InputColumn, ErrorColumnName = "Error" })
                .Append(ml.Transforms.BeitImageProcessor(modelPath))
                .Append(ml.Transforms.BeitClassifier(modelPath))
                .Fit(data);
            return (fitted.LastTransformer.LabelNames, Scores(fitted.Transform(data)));
        }
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"Model '{modelPath}' does not exist (expected a model.zip or a checkpoint folder).", modelPath);
        using var loaded = new DisposableModel(BeitModelZip.Load(ml, modelPath, out var inputSchema));
        var pathColumns = inputSchema.Where(c => c.Type is TextDataViewType).Select(c => c.Name).ToList();
        if (pathColumns.Count != 1)
            throw new InvalidDataException($"'{modelPath}' takes {inputSchema.Count} input columns ({string.Join(", ", inputSchema.Select(c => $"{c.Name}: {c.Type}"))}); 'beit predict' needs exactly one text column of image paths.");
        var all = loaded.Model.Transform(Paths(ml, images, pathColumns[0]));
        var score = all.Schema.GetColumnOrNull("Score");
        var predicted = all.Schema.GetColumnOrNull("PredictedLabel");
        if (score?.Type is not VectorDataViewType { IsKnownSize: true } scoreType || predicted?.Type is not KeyDataViewType key)
            throw new InvalidDataException($"'{modelPath}' is not an image-classification model: it has no Score vector and PredictedLabel key (use 'beit package --task image-classification').");
        VBuffer<ReadOnlyMemory<char>> names = default;
        predicted.Value.GetKeyValues(ref names);
        var labels = names.DenseValues().Select(n => n.ToString()).ToArray();
        if (labels.Length != scoreType.Size || (int)key.Count != labels.Length)
            throw new InvalidDataException($"'{modelPath}': Score has {scoreType.Size} slots but PredictedLabel has {labels.Length} names.");
        try
        {
            return (labels, Scores(all));
        }
        catch (Exception e) when (CliErrors.Expected(e) is BeitInputException or ImageDecodingException)
        {
            // A saved pipeline throws at its first bad image (it has no error column): score the images one by one.
            return (labels, images.Select(image =>
            {
                try
                {
                    return Scores(loaded.Model.Transform(Paths(ml, [image], pathColumns[0])))[0];
                }
                catch (Exception x) when (CliErrors.Expected(x) is BeitInputException or ImageDecodingException)
                {
                    return new Scored(null, CliErrors.Expected(x)!.Message);
                }
            }).ToList());
        }
    }

    /// <summary>Disposes a loaded model (ML.NET's ONNX sessions and their extracted files) when it is disposable.</summary>
    private sealed class DisposableModel(ITransformer model) : IDisposable
    {
        public ITransformer Model { get; } = model;

        public void Dispose() => (Model as IDisposable)?.Dispose();
    }

    private static IDataView Paths(MLContext ml, List<string> images, string column)
    {
        var definition = SchemaDefinition.Create(typeof(PackageCommand.PathRow));
        definition[nameof(PackageCommand.PathRow.ImagePath)].ColumnName = column;
        return ml.Data.LoadFromEnumerable(images.Select(p => new PackageCommand.PathRow { ImagePath = p }).ToArray(), definition);
    }

    /// <summary>One pass over the Score column (and the Error column, when there is one).</summary>
    private static List<Scored> Scores(IDataView scored)
    {
        var column = scored.Schema["Score"];
        var error = scored.Schema.GetColumnOrNull("Error");
        var result = new List<Scored>();
        using var cursor = scored.GetRowCursor(error is { } e ? [column, e] : [column]);
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        var errorGetter = error is { } c ? cursor.GetGetter<ReadOnlyMemory<char>>(c) : null;
        VBuffer<float> value = default;
        ReadOnlyMemory<char> reason = default;
        while (cursor.MoveNext())
        {
            errorGetter?.Invoke(ref reason);
            if (!reason.IsEmpty)
            {
                result.Add(new Scored(null, reason.ToString()));
                continue;
            }
            getter(ref value);
            result.Add(new Scored(value.DenseValues().ToArray(), null));
        }
        return result;
    }

    // ---------------------------------------------------------------- TorchSharp

    private static (IReadOnlyList<string>, List<Scored>) PredictTorch(string modelPath, List<string> images)
    {
        if (!Directory.Exists(modelPath))
            throw new ArgumentException($"--engine torch runs the TorchSharp model from a checkpoint folder; '{modelPath}' is not a folder.");
        var processor = BeitImageProcessorEstimator.LoadProcessor(modelPath);
        using var network = BeitForImageClassification.FromPretrained(modelPath);
        network.eval();
        var result = new List<Scored>();
        foreach (var image in images)
        {
            RgbImage rgb;
            try
            {
                rgb = ImageDecoder.Decode(image);
            }
            catch (IOException e) when (e is ImageDecodingException or FileNotFoundException)
            {
                result.Add(new Scored(null, e.Message));
                continue;
            }
            // The same Pillow-exact preprocessing as the ML.NET pipeline.
            var size = processor.GetOutputSize(rgb.Width, rgb.Height);
            var pixels = processor.Preprocess(rgb);
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var input = torch.tensor(pixels, [1, 3, size.Height, size.Width]);
            result.Add(new Scored(network.forward(input).Logits.softmax(1).data<float>().ToArray(), null));
        }
        return (BeitLabelNames.FromConfig(network.Config), result);
    }

    // ---------------------------------------------------------------- output

    private static void WriteText(List<Result> results)
    {
        foreach (var r in results)
        {
            Console.WriteLine(r.Source);
            if (r.Error != null) Console.WriteLine($"  error: {r.Error}");
            foreach (var (label, p) in r.Top ?? []) Console.WriteLine($"  {p,8:F4}  {label}");
        }
    }

    /// <summary>One array: <c>{"source", "predictions": [{"label", "probability"}]}</c> per image, or <c>{"source", "error"}</c> for an image that failed.</summary>
    private static void WriteJson(List<Result> results)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartArray();
            foreach (var r in results)
            {
                w.WriteStartObject();
                w.WriteString("source", r.Source);
                if (r.Error != null)
                {
                    w.WriteString("error", r.Error);
                }
                else
                {
                    w.WriteStartArray("predictions");
                    foreach (var (label, p) in r.Top!)
                    {
                        w.WriteStartObject();
                        w.WriteString("label", label);
                        w.WriteNumber("probability", p);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        stdout.Write("\n"u8);
    }
}
