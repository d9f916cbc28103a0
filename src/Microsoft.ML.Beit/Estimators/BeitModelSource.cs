using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Where a BEiT model stage gets its network: a Hugging Face checkpoint folder (exported to ONNX in memory by
/// <see cref="BeitOnnxExporter"/>), an ONNX file or ONNX bytes (ours, or another exporter's with a 4-D
/// <c>pixel_values</c> input), or a configuration and tensors in memory, such as a model our trainers produce.
/// </summary>
public sealed class BeitModelSource
{
    private readonly string? _folder;
    private readonly string? _onnxPath;
    private readonly byte[]? _onnx;
    private readonly BeitConfig? _config;
    private readonly IReadOnlyDictionary<string, TensorData>? _tensors;

    private BeitModelSource(string name, string? folder = null, string? onnxPath = null, byte[]? onnx = null,
                            BeitConfig? config = null, IReadOnlyDictionary<string, TensorData>? tensors = null)
    {
        Name = name;
        _folder = folder;
        _onnxPath = onnxPath;
        _onnx = onnx;
        _config = config;
        _tensors = tensors;
    }

    /// <summary>Names the model in messages (a path, or the name given).</summary>
    public string Name { get; }

    /// <summary>The checkpoint folder, when the source is one (for example to read its <c>preprocessor_config.json</c>).</summary>
    public string? CheckpointFolder => _folder;

    /// <summary>The configuration of an in-memory model (<see cref="FromTensors"/>), or the one given with an ONNX model.</summary>
    internal BeitConfig? GivenConfig => _config;

    /// <summary>A checkpoint folder (a directory), an ONNX file (a file) or a Hugging Face model id (<see cref="Hub.BeitHub"/>).</summary>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>, and it names no Hub model.</exception>
    public static BeitModelSource FromPath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Hub.BeitHub.LocalPath(path, Hub.BeitHubFiles.All);
        if (Directory.Exists(path)) return FromCheckpoint(path);
        if (File.Exists(path)) return FromOnnxFile(path);
        throw new FileNotFoundException($"BEiT model '{path}' does not exist (expected a Hugging Face checkpoint folder or an .onnx file).", path);
    }

    /// <summary>A Hugging Face checkpoint folder (<c>config.json</c> plus <c>model.safetensors</c> or <c>pytorch_model.bin</c>), or a Hub model id.</summary>
    public static BeitModelSource FromCheckpoint(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = Hub.BeitHub.LocalPath(folder, Hub.BeitHubFiles.All);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"BEiT checkpoint folder '{folder}' does not exist.");
        return new BeitModelSource(folder, folder: folder);
    }

    /// <summary>An ONNX file; <paramref name="config"/> supplies labels when the file carries no configuration (ours always does).</summary>
    public static BeitModelSource FromOnnxFile(string path, BeitConfig? config = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        return new BeitModelSource(path, onnxPath: path, config: config);
    }

    /// <summary>An ONNX model in memory; <paramref name="config"/> supplies labels when the model carries no configuration.</summary>
    public static BeitModelSource FromOnnx(byte[] model, BeitConfig? config = null, string name = "<onnx bytes>")
    {
        ArgumentNullException.ThrowIfNull(model);
        return new BeitModelSource(name, onnx: model, config: config);
    }

    /// <summary>A configuration and its tensors (Hugging Face names), e.g. a model fine-tuned by our trainers.</summary>
    public static BeitModelSource FromTensors(BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, string name = "<in-memory checkpoint>")
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        return new BeitModelSource(name, config: config, tensors: tensors);
    }

    /// <summary><see cref="FromPath"/>, so options can say <c>Model = "path/to/checkpoint"</c>.</summary>
    public static implicit operator BeitModelSource(string path) => FromPath(path);

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>
    /// The graph computing <paramref name="task"/>: exported for checkpoints and tensors, parsed (and checked) for ONNX.
    /// Errors name the source and say which model the stage needs.
    /// </summary>
    internal BeitScoringGraph Load(BeitOnnxTask task, string stage, BeitOnnxStageOptions stageOptions)
    {
        var graph = Load(task, stage, stageOptions.ExportOptions);
        // A float16 graph on ONNX Runtime's CPU provider would run with Casts around most nodes (few CPU float16
        // kernels), slower than float32: refuse it rather than be silently slow.
        if (stageOptions.GpuDeviceId == null
            && graph.Model.MetadataProps.Any(p => p.Key == BeitOnnxNames.MetadataPrecision && p.Value == nameof(BeitOnnxPrecision.Float16)))
            throw new NotSupportedException(
                $"{stage}: '{Name}' is a Float16 graph, which is for ONNX Runtime's CUDA provider; set GpuDeviceId to run it on a GPU, " +
                "or use Precision Float32 or Int8 on the CPU.");
        return graph;
    }

    private BeitScoringGraph Load(BeitOnnxTask task, string stage, BeitOnnxExportOptions? exportOptions)
    {
        if (_onnxPath != null || _onnx != null)
        {
            // ONNX's protobuf cannot exceed 2 GiB, so nothing larger is read.
            byte[] bytes = _onnx ?? IO.BeitFiles.ReadAllBytesData(_onnxPath!, int.MaxValue);
            return BeitScoringGraph.FromOnnx(OnnxGraphAdapters.Parse(bytes, Name), _config, task, stage, Name);
        }
        var config = _config ?? BeitConfig.Load(_folder!);
        CheckArchitecture(config, task, stage);
        var tensors = _tensors ?? BeitCheckpoint.ReadTensors(_folder!);
        var options = new BeitOnnxExportOptions
        {
            ImageHeight = exportOptions?.ImageHeight,
            ImageWidth = exportOptions?.ImageWidth,
            OperatorSet = exportOptions?.OperatorSet ?? BeitOnnxOperatorSet.OnnxRuntimeFused,
            Precision = exportOptions?.Precision ?? BeitOnnxPrecision.Float32,
            Int8ReduceRange = exportOptions?.Int8ReduceRange,
        };
        ModelProto model;
        try
        {
            model = BeitOnnxExporter.BuildModel(config, tensors, task, options);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException)
        {
            throw new InvalidDataException($"{stage}: '{Name}' cannot be used as {Describe(task)}: {e.Message}", e);
        }
        return BeitScoringGraph.FromOnnx(model, config, task, stage, Name);
    }

    internal static string Describe(BeitOnnxTask task) => task switch
    {
        BeitOnnxTask.ImageClassification => "an image-classification model (BeitForImageClassification)",
        BeitOnnxTask.SemanticSegmentation => "a semantic-segmentation model (BeitForSemanticSegmentation)",
        BeitOnnxTask.Features => "a feature extractor (BeitModel with its pooler)",
        _ => task.ToString(),
    };

    /// <summary>Refuses a checkpoint whose declared architecture has another head than the stage needs.</summary>
    private void CheckArchitecture(BeitConfig config, BeitOnnxTask task, string stage)
    {
        var architectures = config.Architectures;
        if (architectures == null || architectures.Length == 0) return;
        string? needed = task switch
        {
            BeitOnnxTask.ImageClassification => "BeitForImageClassification",
            BeitOnnxTask.SemanticSegmentation => "BeitForSemanticSegmentation",
            _ => null,
        };
        if (needed != null && !architectures.Contains(needed))
            throw new ArgumentException(
                $"{stage}: '{Name}' is a {string.Join("/", architectures)} checkpoint; it needs {Describe(task)}.", "model");
    }
}

/// <summary>A BEiT ONNX graph for one task, checked, with what the stages need to know about it.</summary>
internal sealed class BeitScoringGraph
{
    private BeitScoringGraph(ModelProto model, BeitConfig? config, int channels, int height, int width, string source)
    {
        Model = model;
        Config = config;
        Channels = channels;
        Height = height;
        Width = width;
        Source = source;
    }

    public ModelProto Model { get; }
    public BeitConfig? Config { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public string Source { get; }

    /// <summary>The static dimensions of graph output <paramref name="name"/> (batch = −1), or null.</summary>
    public long[]? OutputDims(string name) => OnnxGraphAdapters.Dims(Model.Graph.Output, name);

    public static BeitScoringGraph FromOnnx(ModelProto model, BeitConfig? config, BeitOnnxTask task, string stage, string source)
    {
        var metadata = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        if (metadata.TryGetValue(BeitOnnxNames.MetadataTask, out var written) && written != task.ToString())
            throw new ArgumentException($"{stage}: '{source}' is a BEiT {written} export; it needs {BeitModelSource.Describe(task)}.", "model");
        if (config == null && metadata.TryGetValue(BeitOnnxNames.MetadataConfig, out var json))
            config = BeitConfig.FromJson(json);
        var dims = OnnxGraphAdapters.Dims(model.Graph.Input, BeitOnnxNames.PixelValues);
        var input = model.Graph.Input.FirstOrDefault(v => v.Name == BeitOnnxNames.PixelValues);
        if (dims == null || dims.Length != 4 || dims.Skip(1).Any(d => d <= 0) ||
            input!.Type.TensorType.ElemType != (int)TensorProto.Types.DataType.Float)
            throw new InvalidDataException(
                $"{stage}: '{source}' has no float input '{BeitOnnxNames.PixelValues}' [batch, channels, height, width] with a fixed size; is it a BEiT export?");
        return new BeitScoringGraph(model, config, (int)dims[1], (int)dims[2], (int)dims[3], source);
    }

    /// <summary>The output a stage needs, with its static dimensions; a clear error when the graph lacks it.</summary>
    public long[] RequireOutput(string name, int rank, string stage, BeitOnnxTask task)
    {
        var dims = OutputDims(name);
        if (dims == null || dims.Length != rank || dims.Skip(1).Any(d => d <= 0))
            throw new ArgumentException(
                $"{stage}: '{Source}' has no output '{name}' of rank {rank} with fixed dimensions; it needs {BeitModelSource.Describe(task)}.", "model");
        return dims;
    }

    /// <summary>Class names for <paramref name="count"/> classes: the configuration's <c>id2label</c>, or <c>LABEL_i</c>, made unique.</summary>
    public string[] LabelNames(int count, IReadOnlyList<string>? overrideNames, string stage)
    {
        string[] names;
        if (overrideNames != null)
        {
            if (overrideNames.Count != count)
                throw new ArgumentException($"{stage}: {overrideNames.Count} label names were given, but '{Source}' has {count} classes.", "options");
            names = [.. overrideNames];
        }
        else
        {
            names = Enumerable.Range(0, count).Select(i => Config?.LabelName(i) ?? $"LABEL_{i}").ToArray();
        }
        return BeitLabelNames.MakeUnique(names);
    }

    /// <summary>
    /// The adapted model as bytes, for embedding in a model.zip. The configuration in its metadata loses
    /// <c>_name_or_path</c> (Hugging Face writes where the checkpoint was loaded from, often an absolute local path)
    /// and <c>_commit_hash</c>: a saved model must not name the machine it was built on.
    /// </summary>
    public byte[] ToBytes()
    {
        foreach (var entry in Model.MetadataProps.Where(p => p.Key == BeitOnnxNames.MetadataConfig))
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(entry.Value) is System.Text.Json.Nodes.JsonObject config &&
                (config.Remove("_name_or_path") | config.Remove("_commit_hash")))
                entry.Value = config.ToJsonString();
        }
        return Google.Protobuf.MessageExtensions.ToByteArray(Model);
    }
}
