// Classifies images with a Hugging Face BEiT checkpoint through an ML.NET pipeline, saves the pipeline to model.zip,
// loads it back and predicts again with a PredictionEngine.
//
//   dotnet run --project samples/ClassifyImages                                   (bundled tiny checkpoint and photos)
//   dotnet run --project samples/ClassifyImages -- path/to/beit-base-patch16-224 photo.jpg photos/
//   ... --out path/to/model.zip                                                     (default: model.zip in the current folder)
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Scoring;

string zip = Path.GetFullPath("model.zip");
int outAt = Array.IndexOf(args, "--out");
if (outAt >= 0)
{
    if (outAt + 1 >= args.Length)
    {
        Console.Error.WriteLine("--out needs a path.");
        return 2;
    }
    zip = Path.GetFullPath(args[outAt + 1]);
    args = [.. args[..outAt], .. args[(outAt + 2)..]];
}
string assets = Path.Combine(AppContext.BaseDirectory, "assets");
string checkpoint = args.Length > 0 ? args[0] : Path.Combine(assets, "tiny-cls");
var images = Images(args.Length > 1 ? args[1..] : [Path.Combine(assets, "images")]);
if (images.Count == 0)
{
    Console.Error.WriteLine("No images found.");
    return 1;
}

var ml = new MLContext();
var data = ml.Data.LoadFromEnumerable(images.Select(p => new ImageInput { ImagePath = p }).ToArray());

// image path → decoded RGB (Pillow-exact) → pixel_values (the checkpoint's preprocessor_config.json) → BEiT on ONNX Runtime
// → Score (probabilities) and PredictedLabel (a key whose values are id2label), mapped back to its name.
var pipeline = ml.Transforms.LoadBeitImages(outputColumnName: "Image", inputColumnName: "ImagePath")
    .Append(ml.Transforms.BeitImageProcessor(checkpoint, outputColumnName: "PixelValues", inputColumnName: "Image"))
    .Append(ml.Transforms.BeitClassifier(checkpoint, inputColumnName: "PixelValues"))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

Console.WriteLine($"Checkpoint: {checkpoint}");
try
{
    using (var model = pipeline.Fit(data))
    {
        var classifier = BeitClassifierTransformer.FromLoaded(model);
        Console.WriteLine($"Model input {classifier.ImageHeight}x{classifier.ImageWidth}, {classifier.LabelNames.Count} labels");
        Console.WriteLine();
        Console.WriteLine("In memory:");
        var predictions = ml.Data.CreateEnumerable<ImagePrediction>(model.Transform(data), reuseRowObject: false).ToList();
        for (int i = 0; i < images.Count; i++) Print(images[i], predictions[i], classifier.LabelNames);

        // Written next to its final name, then renamed: an interrupted run never leaves a half-written model.zip.
        string partial = zip + $".{Environment.ProcessId}.tmp";
        try
        {
            ml.Model.Save(model, data.Schema, partial);
            File.Move(partial, zip, overwrite: true);
        }
        finally
        {
            File.Delete(partial);
        }
        Console.WriteLine();
        Console.WriteLine($"Saved {zip} ({new FileInfo(zip).Length / 1e6:F1} MB: the ONNX graph, label names and preprocessing settings).");
    }

    // A fresh load needs nothing but this library's assembly next to the application.
    // BeitModelZip.Load checks the zip (sizes, CRCs) before ML.NET reads it; dispose the model when done.
    var loaded = BeitModelZip.Load(ml, zip, out _);
    using (loaded as IDisposable)
    // The engine must not own the model: disposing an engine that owns it breaks every other user of the model.
    using (var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(loaded, new PredictionEngineOptions { OwnsTransformer = false }))
    {
        var labels = BeitClassifierTransformer.FromLoaded(loaded).LabelNames;
        Console.WriteLine();
        Console.WriteLine("Reloaded, one image at a time with a PredictionEngine:");
        foreach (var image in images) Print(image, engine.Predict(new ImageInput { ImagePath = image }), labels);
    }
}
catch (Exception e) when (e is BeitInputException or IOException or InvalidDataException or ArgumentException
                           or UnauthorizedAccessException or BeitOnnxRuntimeMissingException)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
Console.WriteLine($"Kept {zip}.");
return 0;

static void Print(string image, ImagePrediction prediction, IReadOnlyList<string> labels)
{
    var top = prediction.Score.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(3)
        .Select(x => $"{labels[x.i]} {x.p:P1}");
    Console.WriteLine($"  {Path.GetFileName(image),-16} {prediction.PredictedLabel,-12} ({string.Join(", ", top)})");
}

static List<string> Images(IEnumerable<string> inputs)
{
    string[] extensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];
    return inputs.SelectMany<string, string>(p => Directory.Exists(p)
            ? Directory.EnumerateFiles(p).Where(f => extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order()
            : [p])
        .ToList();
}

/// <summary>The pipeline's input: one image path per row.</summary>
public sealed class ImageInput
{
    public string ImagePath { get; set; } = "";
}

/// <summary>What the sample reads back: the class probabilities and the predicted label's name.</summary>
public sealed class ImagePrediction
{
    public float[] Score { get; set; } = [];
    public string PredictedLabel { get; set; } = "";
}
