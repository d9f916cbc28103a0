using System.CommandLine;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Hub;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using Microsoft.ML.Beit.Training.Pretraining;
using Spectre.Console;

namespace Beit.Cli.Commands;

/// <summary><c>beit pretrain &lt;folder-of-images&gt; --out &lt;checkpoint-folder&gt; [--tokenizer kmeans|&lt;tokenizer.onnx&gt;] ...</c></summary>
internal static class PretrainCommand
{
    public static Command Create()
    {
        var folder = new Argument<string>("folder-of-images") { Description = "Unlabeled images (any subfolders), or a folder with MNIST-style IDX files (train-images-idx3-ubyte[.gz])." };
        var output = new Option<string>("--out") { Description = "Checkpoint folder to write (config.json + model.safetensors [+ kmeans_tokenizer.safetensors]).", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "kmeans (learnt from the images; the offline default) or the path of an ONNX tokenizer such as a DALL·E dVAE encoder.", DefaultValueFactory = _ => "kmeans" };
        var vocab = new Option<int>("--vocab-size") { Description = "k-means codebook size, or the ONNX tokenizer's codebook size.", DefaultValueFactory = _ => 512 };
        var tokInput = new Option<string>("--tokenizer-input") { Description = "Input name of an ONNX tokenizer.", DefaultValueFactory = _ => "x" };
        var tokOutput = new Option<string>("--tokenizer-output") { Description = "Output (codebook logits) name of an ONNX tokenizer.", DefaultValueFactory = _ => "logits" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Continue pre-training from this checkpoint folder or Hub model id." };
        var common = new TrainingCliOptions(defaultEpochs: 10, defaultBatch: 128, defaultLr: 1.5e-3);
        var maskRatio = new Option<double>("--mask-ratio") { Description = "Fraction of patches masked per image.", DefaultValueFactory = _ => 75.0 / 196 };
        var cmd = new Command("pretrain", "Pre-train BEiT with masked image modeling on unlabeled images.") { folder, output, tokenizer, vocab, tokInput, tokOutput, checkpoint, maskRatio };
        common.AddTo(cmd);
        cmd.SetAction((pr, ct) => Task.FromResult(Run(pr, folder, output, tokenizer, vocab, tokInput, tokOutput, checkpoint, maskRatio, common, ct)));
        return cmd;
    }

    private static int Run(ParseResult pr, Argument<string> folderArg, Option<string> outputOpt, Option<string> tokenizerOpt, Option<int> vocabOpt,
        Option<string> tokInputOpt, Option<string> tokOutputOpt, Option<string?> checkpointOpt, Option<double> maskRatioOpt, TrainingCliOptions common, CancellationToken ct)
    {
        string folder = pr.GetValue(folderArg)!, output = pr.GetValue(outputOpt)!;
        // Before any work: an unwritable output folder fails now, not after pre-training.
        AtomicFile.CheckWritable(output);
        string? checkpoint = pr.GetValue(checkpointOpt) is string c ? HubModels.Local(c, BeitHubFiles.Configuration | BeitHubFiles.Weights, ct) : null;
        int? size = pr.GetValue(common.ImageSize) ?? (checkpoint is null ? null : BeitConfig.Load(checkpoint).ImageSize);
        var images = TrainingCliOptions.LoadImages(folder, unlabeled: true, size, out _);
        AnsiConsole.MarkupLineInterpolated($"[bold]{images.Count:N0}[/] images at {images.Height}×{images.Width} from {folder}");

        string tok = pr.GetValue(tokenizerOpt)!;
        using var onnxTokenizer = tok == "kmeans" ? null : new OnnxVisualTokenizer(tok, new()
        {
            InputName = pr.GetValue(tokInputOpt)!, OutputName = pr.GetValue(tokOutputOpt)!, VocabSize = pr.GetValue(vocabOpt),
        });
        var options = new BeitMaskedImageModelingTrainer.Options
        {
            CheckpointFolder = checkpoint, Tokenizer = onnxTokenizer, MaskRatio = pr.GetValue(maskRatioOpt),
            KMeans = new KMeansPatchTokenizer.Options { VocabSize = pr.GetValue(vocabOpt) },
        };
        common.Apply(pr, options);
        var result = TrainingCliOptions.WithProgress("pre-training", options, () =>
            new BeitMaskedImageModelingTrainer(options).Train(images, ct));
        BeitMaskedImageModelingTrainer.Save(result, output);
        var last = result.History[^1];
        if (!double.IsNaN(last.ValidationAccuracy))
            AnsiConsole.MarkupLineInterpolated($"Masked-token accuracy (held out): [bold]{last.ValidationAccuracy:P2}[/], loss {last.ValidationLoss:F3}; {last.Elapsed:hh\\:mm\\:ss}.");
        AnsiConsole.MarkupLineInterpolated($"Wrote {Path.GetFullPath(output)} — fine-tune it with: beit train <folder> --checkpoint {output} --out model.zip");
        return 0;
    }
}
