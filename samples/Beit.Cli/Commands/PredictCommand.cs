using System.CommandLine;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Data;
using TorchSharp;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit predict --model &lt;model.zip | checkpoint-folder&gt; [--engine onnx|torch] [--top-k K] [--json] &lt;image|folder&gt;...</c>:
/// the top-k labels with probabilities per image, through the ML.NET pipeline (ONNX Runtime) or the TorchSharp model,
/// so the two engines can be compared.
/// </summary>
internal static class PredictCommand
{
    private static readonly HashSet<string> s_imageExtensions = new(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A model.zip made by 'beit package' (or any saved classification pipeline), a Hugging Face checkpoint folder, or a Hub model id (org/name[@revision]).", Required = true };
        var engine = new Option<string>("--engine") { Description = "onnx (default): the ML.NET pipeline on ONNX Runtime; torch: the TorchSharp BeitForImageClassification (checkpoint folders only).", DefaultValueFactory = _ => "onnx" };
        engine.AcceptOnlyFromAmong("onnx", "torch");
        var topK = new Option<int>("--top-k") { Description = "How many labels to print per image (default 5).", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Write one JSON array of {\"source\", \"predictions\": [{\"label\", \"probability\"}]} instead of text." };
        var inputs = new Argument<string[]>("image|folder") { Description = "Image files, or folders whose images (png, jpg, jpeg, bmp, gif, webp) are all classified.", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("predict", "Print the top-k labels with probabilities for each image.") { model, engine, topK, json, inputs };
        cmd.SetAction(pr =>
        {
            string modelPath = pr.GetValue(model)!, engineName = pr.GetValue(engine)!;
            int k = pr.GetValue(topK);
            if (k < 1)
            {
                Console.Error.WriteLine("beit predict: --top-k must be at least 1.");
                return 2;
            }
            try
            {
                var images = Expand(pr.GetValue(inputs)!);
                modelPath = HubModels.Local(modelPath);
                var (labels, probabilities) = engineName == "torch" ? PredictTorch(modelPath, images) : PredictOnnx(modelPath, images);
                var results = images.Select((source, i) => (source, Top(labels, probabilities[i], k))).ToList();
                if (pr.GetValue(json)) WriteJson(results);
                else WriteText(results);
                return 0;
            }
            catch (Exception e) when (Inner(e) is { } error)
            {
                Console.Error.WriteLine($"beit predict: {error.Message}");
                return 1;
            }
        });
        return cmd;
    }

    /// <summary>The user-facing error behind <paramref name="e"/> (ML.NET wraps errors raised on its worker threads).</summary>
    private static Exception? Inner(Exception e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
            if (x is BeitInputException or ImageDecodingException) return x;
        return e is IOException or InvalidDataException or ArgumentException or NotSupportedException or UnauthorizedAccessException or InvalidOperationException or TimeoutException ? e : null;
    }

    private static List<string> Expand(string[] inputs)
    {
        var images = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                images.AddRange(Directory.EnumerateFiles(input).Where(f => s_imageExtensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal));
            else if (File.Exists(input))
                images.Add(input);
            else
                throw new FileNotFoundException($"'{input}' is neither an image file nor a folder.", input);
        }
        if (images.Count == 0) throw new ArgumentException("No images to classify (folders are searched for png, jpg, jpeg, bmp, gif and webp files).");
        return images;
    }

    private static (string Label, float Probability)[] Top(IReadOnlyList<string> labels, float[] probabilities, int k) =>
        probabilities.Select((p, i) => (labels[i], p))
            .OrderByDescending(x => x.p).ThenBy(x => Array.IndexOf(probabilities, x.p))
            .Take(k).ToArray();

    // ---------------------------------------------------------------- ONNX Runtime through the ML.NET pipeline

    private static (IReadOnlyList<string>, List<float[]>) PredictOnnx(string modelPath, List<string> images)
    {
        var ml = new MLContext();
        if (Directory.Exists(modelPath))
        {
            // A checkpoint folder: the same pipeline 'beit package' saves, built in memory.
            var data = Paths(ml, images, PackageCommand.InputColumn);
            using var fitted = ml.Transforms.LoadBeitImages("Image", PackageCommand.InputColumn)
                .Append(ml.Transforms.BeitImageProcessor(modelPath))
                .Append(ml.Transforms.BeitClassifier(modelPath))
                .Fit(data);
            return (fitted.LastTransformer.LabelNames, Scores(fitted.Transform(data)));
        }
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"Model '{modelPath}' does not exist (expected a model.zip or a checkpoint folder).", modelPath);
        var loaded = ml.Model.Load(modelPath, out var inputSchema);
        try
        {
            var pathColumns = inputSchema.Where(c => c.Type is TextDataViewType).Select(c => c.Name).ToList();
            if (pathColumns.Count != 1)
                throw new InvalidDataException($"'{modelPath}' takes {inputSchema.Count} input columns ({string.Join(", ", inputSchema.Select(c => $"{c.Name}: {c.Type}"))}); 'beit predict' needs exactly one text column of image paths.");
            var scored = loaded.Transform(Paths(ml, images, pathColumns[0]));
            var score = scored.Schema.GetColumnOrNull("Score");
            var predicted = scored.Schema.GetColumnOrNull("PredictedLabel");
            if (score?.Type is not VectorDataViewType { IsKnownSize: true } scoreType || predicted?.Type is not KeyDataViewType key)
                throw new InvalidDataException($"'{modelPath}' is not an image-classification model: it has no Score vector and PredictedLabel key (use 'beit package --task image-classification').");
            VBuffer<ReadOnlyMemory<char>> names = default;
            predicted.Value.GetKeyValues(ref names);
            var labels = names.DenseValues().Select(n => n.ToString()).ToArray();
            if (labels.Length != scoreType.Size || (int)key.Count != labels.Length)
                throw new InvalidDataException($"'{modelPath}': Score has {scoreType.Size} slots but PredictedLabel has {labels.Length} names.");
            return (labels, Scores(scored));
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    private static IDataView Paths(MLContext ml, List<string> images, string column)
    {
        var definition = SchemaDefinition.Create(typeof(PackageCommand.PathRow));
        definition[nameof(PackageCommand.PathRow.ImagePath)].ColumnName = column;
        return ml.Data.LoadFromEnumerable(images.Select(p => new PackageCommand.PathRow { ImagePath = p }).ToArray(), definition);
    }

    private static List<float[]> Scores(IDataView scored)
    {
        var column = scored.Schema["Score"];
        var result = new List<float[]>();
        using var cursor = scored.GetRowCursor([column]);
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        VBuffer<float> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            result.Add(value.DenseValues().ToArray());
        }
        return result;
    }

    // ---------------------------------------------------------------- TorchSharp

    private static (IReadOnlyList<string>, List<float[]>) PredictTorch(string modelPath, List<string> images)
    {
        if (!Directory.Exists(modelPath))
            throw new ArgumentException($"--engine torch runs the TorchSharp model from a checkpoint folder; '{modelPath}' is not a folder.");
        var processor = BeitImageProcessorEstimator.LoadProcessor(modelPath);
        using var network = BeitForImageClassification.FromPretrained(modelPath);
        network.eval();
        var result = new List<float[]>();
        foreach (var image in images)
        {
            // The same Pillow-exact preprocessing as the ML.NET pipeline.
            var rgb = ImageDecoder.Decode(image);
            var size = processor.GetOutputSize(rgb.Width, rgb.Height);
            var pixels = processor.Preprocess(rgb);
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var input = torch.tensor(pixels, [1, 3, size.Height, size.Width]);
            result.Add(network.forward(input).Logits.softmax(1).data<float>().ToArray());
        }
        return (BeitLabelNames.FromConfig(network.Config), result);
    }

    // ---------------------------------------------------------------- output

    private static void WriteText(List<(string Source, (string Label, float Probability)[] Top)> results)
    {
        foreach (var (source, top) in results)
        {
            Console.WriteLine(source);
            foreach (var (label, p) in top) Console.WriteLine($"  {p,8:F4}  {label}");
        }
    }

    private static void WriteJson(List<(string Source, (string Label, float Probability)[] Top)> results)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartArray();
            foreach (var (source, top) in results)
            {
                w.WriteStartObject();
                w.WriteString("source", source);
                w.WriteStartArray("predictions");
                foreach (var (label, p) in top)
                {
                    w.WriteStartObject();
                    w.WriteString("label", label);
                    w.WriteNumber("probability", p);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        stdout.Write("\n"u8);
    }
}
