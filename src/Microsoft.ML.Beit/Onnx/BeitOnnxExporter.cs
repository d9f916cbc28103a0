using System.Reflection;
using Google.Protobuf;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx.Proto;
using Microsoft.ML.Beit.Onnx.Stages;
using static Microsoft.ML.Beit.Onnx.OnnxGraphBuilder;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// Writes a BEiT checkpoint (Hugging Face <c>config.json</c> + weights) as an ONNX model, in C#, with no PyTorch:
/// classification, features, masked image modeling and UperNet semantic segmentation (which PyTorch's exporter cannot
/// export). Inputs have a dynamic batch dimension; the resolution is fixed at export time.
/// </summary>
public static class BeitOnnxExporter
{
    /// <summary>ONNX opset of the default domain.</summary>
    public const int OnnxOpset = 17;

    private const int IrVersion = 8;

    // Protobuf messages are limited to 2 GiB; leave room for the graph itself.
    private const long MaxModelBytes = 2_000_000_000;

    /// <summary>
    /// Exports the checkpoint in <paramref name="checkpointFolder"/> (<c>config.json</c> + <c>model.safetensors</c> or
    /// <c>pytorch_model.bin</c>) to <paramref name="outputPath"/>, atomically (temporary file, then rename).
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint lacks tensors the task needs, or shapes disagree with the configuration.</exception>
    /// <exception cref="NotSupportedException">The task or options do not fit the model (e.g. masked image modeling without a mask token).</exception>
    public static void Export(string checkpointFolder, BeitOnnxTask task, string outputPath, BeitOnnxExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointFolder);
        checkpointFolder = Hub.BeitHub.LocalPath(checkpointFolder, Hub.BeitHubFiles.Configuration | Hub.BeitHubFiles.Weights);
        var config = BeitConfig.Load(checkpointFolder);
        Validate(config, task, options ?? new());
        Export(config, BeitCheckpoint.ReadTensors(checkpointFolder), task, outputPath, options);
    }

    /// <summary>Exports a configuration and its tensors (Hugging Face names) to <paramref name="outputPath"/>, atomically.</summary>
    public static void Export(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, BeitOnnxTask task, string outputPath, BeitOnnxExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        var model = BuildModel(config, tensors, task, options ?? new());
        IO.AtomicFile.Write(outputPath, tmp =>
        {
            using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            model.WriteTo(fs);
        });
    }

    /// <summary>Exports a configuration and its tensors to ONNX bytes in memory (e.g. for an ML.NET pipeline).</summary>
    public static byte[] ExportToBytes(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, BeitOnnxTask task, BeitOnnxExportOptions? options = null) =>
        BuildModel(config, tensors, task, options ?? new()).ToByteArray();

    /// <summary>Exports the checkpoint in <paramref name="checkpointFolder"/> to ONNX bytes in memory.</summary>
    public static byte[] ExportToBytes(string checkpointFolder, BeitOnnxTask task, BeitOnnxExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointFolder);
        checkpointFolder = Hub.BeitHub.LocalPath(checkpointFolder, Hub.BeitHubFiles.Configuration | Hub.BeitHubFiles.Weights);
        var config = BeitConfig.Load(checkpointFolder);
        Validate(config, task, options ?? new());
        return ExportToBytes(config, BeitCheckpoint.ReadTensors(checkpointFolder), task, options);
    }

    /// <summary>Checks that the task and options fit the configuration, before any weights are read.</summary>
    private static (int Height, int Width) Validate(BeitConfig config, BeitOnnxTask task, BeitOnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (!Enum.IsDefined(task)) throw new ArgumentOutOfRangeException(nameof(task), task, "Unknown BeitOnnxTask.");
        if (!Enum.IsDefined(options.OperatorSet)) throw new ArgumentOutOfRangeException(nameof(options), options.OperatorSet, "Unknown BeitOnnxOperatorSet.");
        if (!Enum.IsDefined(options.Precision)) throw new ArgumentOutOfRangeException(nameof(options), options.Precision, "Unknown BeitOnnxPrecision.");
        if (options.Int8ReduceRange != null && options.Precision != BeitOnnxPrecision.Int8)
            throw new NotSupportedException("Int8ReduceRange applies only to Precision = Int8.");
        int h = options.ImageHeight ?? config.ImageSize, w = options.ImageWidth ?? config.ImageSize;
        int p = config.PatchSize;
        if (h <= 0 || w <= 0) throw new ArgumentOutOfRangeException(nameof(options), $"Image size {h}x{w} must be positive.");
        if (h % p != 0 || w % p != 0)
            throw new NotSupportedException($"Image size {h}x{w} is not a multiple of the patch size {p}.");
        if (config.ImageSize % p != 0)
            throw new NotSupportedException($"The checkpoint's image_size {config.ImageSize} is not a multiple of its patch size {p}.");
        if (task == BeitOnnxTask.MaskedImageModeling && !config.UseMaskToken)
            throw new NotSupportedException("Masked image modeling needs a model with a mask token (use_mask_token = true).");
        if (options.OutputAttentions && options.Precision == BeitOnnxPrecision.Float16)
            throw new NotSupportedException("OutputAttentions is not supported with Precision = Float16.");
        if (options.SegmentationLabels && task != BeitOnnxTask.SemanticSegmentation)
            throw new NotSupportedException("SegmentationLabels applies only to the SemanticSegmentation task.");
        if (task == BeitOnnxTask.SemanticSegmentation)
        {
            config.ValidateSegmentationHead();
            BeitSegmentationExport.Taps(config);
            if (h / p < 2 || w / p < 2)
                throw new NotSupportedException($"Semantic segmentation needs a patch grid of at least 2x2 (got {h / p}x{w / p}).");
            if (config.NumLabels < 1) throw new NotSupportedException("Semantic segmentation needs num_labels >= 1.");
        }
        if (task == BeitOnnxTask.ImageClassification && config.NumLabels < 1)
            throw new NotSupportedException("Image classification needs num_labels >= 1.");
        return (h, w);
    }

    internal static ModelProto BuildModel(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, BeitOnnxTask task, BeitOnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var (h, w) = Validate(config, task, options);
        bool reduceRange = options.Int8ReduceRange ?? !CpuFeatures.Current.HasInt8DotProduct;
        var int8 = options.Precision == BeitOnnxPrecision.Int8 ? new BeitExportContext.Int8Settings(reduceRange, options.Int8MatMul) : null;
        var ctx = new BeitExportContext(config, new BeitCheckpointWeights(tensors), h, w,
            options.OperatorSet == BeitOnnxOperatorSet.OnnxRuntimeFused, options.AttentionOperator, int8);
        var b = ctx.B;
        const string batch = BeitExportContext.Batch;
        var f32 = BeitExportContext.Float32;

        var pixels = b.Input(BeitOnnxNames.PixelValues, f32, batch, config.NumChannels, h, w);
        string? mask = task == BeitOnnxTask.MaskedImageModeling
            ? b.Input(BeitOnnxNames.BoolMaskedPos, TensorProto.Types.DataType.Bool, batch, ctx.NumPatches)
            : null;
        var embeddings = BeitEmbeddingsExport.Build(ctx, pixels, mask);
        int layers = config.NumHiddenLayers;
        (float[], float[])? finalNorm = config.UseMeanPooling ? null : ctx.LayerNormWeights(ctx.Weights.Backbone("layernorm"), ctx.Hidden);

        switch (task)
        {
            case BeitOnnxTask.Features:
            {
                var enc = BeitEncoderExport.Build(ctx, embeddings, layers, config.UseMeanPooling ? new HashSet<int> { layers } : new HashSet<int>(), finalNorm);
                var sequence = enc.FinalNormed ?? enc.Hidden[layers]!;
                var pooled = BeitHeadsExport.Pooler(ctx, sequence);
                Output(b, sequence, BeitOnnxNames.LastHiddenState, f32, batch, ctx.Tokens, ctx.Hidden);
                Output(b, pooled, BeitOnnxNames.PoolerOutput, f32, batch, ctx.Hidden);
                break;
            }
            case BeitOnnxTask.ImageClassification:
            {
                var enc = BeitEncoderExport.Build(ctx, embeddings, layers, config.UseMeanPooling ? new HashSet<int> { layers } : new HashSet<int>(), finalNorm);
                var pooled = BeitHeadsExport.Pooler(ctx, enc.FinalNormed ?? enc.Hidden[layers]!);
                var (logits, probs) = BeitHeadsExport.Classifier(ctx, pooled);
                Output(b, logits, BeitOnnxNames.Logits, f32, batch, config.NumLabels);
                Output(b, probs, BeitOnnxNames.Probabilities, f32, batch, config.NumLabels);
                break;
            }
            case BeitOnnxTask.MaskedImageModeling:
            {
                var enc = BeitEncoderExport.Build(ctx, embeddings, layers, config.UseMeanPooling ? new HashSet<int> { layers } : new HashSet<int>(), finalNorm);
                var logits = BeitHeadsExport.MaskedImageModeling(ctx, enc.FinalNormed ?? enc.Hidden[layers]!);
                Output(b, logits, BeitOnnxNames.Logits, f32, batch, ctx.NumPatches, config.VocabSize);
                break;
            }
            case BeitOnnxTask.SemanticSegmentation:
            {
                // Only the layers up to the deepest tap influence the logits; later layers are not exported.
                var taps = BeitSegmentationExport.Taps(config);
                var enc = BeitEncoderExport.Build(ctx, embeddings, taps.Max(), taps.ToHashSet(), null);
                var logits = BeitSegmentationExport.Build(ctx, taps.Select(t => enc.Hidden[t]!).ToArray());
                logits = Output(b, logits, BeitOnnxNames.Logits, f32, batch, config.NumLabels, 4 * ctx.GridHeight, 4 * ctx.GridWidth);
                if (options.SegmentationLabels)
                {
                    // post_process_semantic_segmentation with target size = input size: bilinear upsample, argmax over classes.
                    var up = ctx.ResizeBilinear(logits, "labels.resize", h, w);
                    var labels = b.Op("ArgMax", "labels.argmax", [up], Int("axis", 1), Int("keepdims", 0));
                    Output(b, labels, BeitOnnxNames.Labels, TensorProto.Types.DataType.Int64, batch, h, w);
                }
                break;
            }
        }

        if (options.Precision == BeitOnnxPrecision.Float16) OnnxFloat16Converter.Convert(b.Graph);

        long bytes = b.Graph.Initializer.Sum(t => (long)t.RawData.Length);
        if (bytes > MaxModelBytes)
            throw new NotSupportedException(
                $"The exported weights take {bytes / 1e9:F2} GB; a single ONNX protobuf file is limited to 2 GB (external data files are not written).");

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Microsoft.ML.Beit",
            ProducerVersion = typeof(BeitOnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            DocString = $"BEiT {task} exported by Microsoft.ML.Beit from a Hugging Face checkpoint.",
            Graph = b.Graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxOpset });
        if (b.UsesMicrosoftDomain) model.OpsetImport.Add(new OperatorSetIdProto { Domain = MicrosoftDomain, Version = 1 });
        model.MetadataProps.Add(new StringStringEntryProto { Key = BeitOnnxNames.MetadataTask, Value = task.ToString() });
        model.MetadataProps.Add(new StringStringEntryProto { Key = BeitOnnxNames.MetadataImageSize, Value = $"{h}x{w}" });
        model.MetadataProps.Add(new StringStringEntryProto { Key = BeitOnnxNames.MetadataOperatorSet, Value = options.OperatorSet.ToString() });
        model.MetadataProps.Add(new StringStringEntryProto { Key = BeitOnnxNames.MetadataPrecision, Value = options.Precision.ToString() });
        if (int8 != null)
            model.MetadataProps.Add(new StringStringEntryProto { Key = BeitOnnxNames.MetadataInt8WeightBits, Value = int8.ReduceRange ? "7" : "8" });
        model.MetadataProps.Add(new StringStringEntryProto { Key = BeitOnnxNames.MetadataConfig, Value = config.ToJson() });
        if (options.OutputAttentions) BeitOnnxAttention.AddOutputs(model);
        return model;
    }

    /// <summary>Names <paramref name="value"/> as graph output <paramref name="name"/>; returns the new value name.</summary>
    private static string Output(OnnxGraphBuilder b, string value, string name, TensorProto.Types.DataType type, params object[] dims)
    {
        b.Rename(value, name);
        b.Output(name, type, dims);
        return name;
    }
}
