using System.IO.Compression;
using Google.Protobuf;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Microsoft.ML.Beit.Attention;

/// <summary>
/// "What does the model look at?": an ONNX Runtime session over a BEiT graph with attention outputs plus the model's
/// own preprocessing, so <see cref="Explain"/> turns a decoded image into its <see cref="BeitAttentionMaps"/>.
/// </summary>
/// <remarks>
/// <para>From a checkpoint folder or Hub id (<see cref="FromCheckpoint"/>) the backbone is exported with
/// <see cref="BeitOnnxExportOptions.OutputAttentions"/>. A <c>model.zip</c> (<see cref="FromModelZip"/>) stores no
/// attention outputs, but it stores the exporter's graph: its fused attention nodes are rewritten in standard
/// operators that expose the probabilities (<see cref="BeitOnnxAttention.AddOutputs(byte[])"/>), so the maps are those
/// of the packaged weights; the zip's <c>BeitImageProcessor</c> stage gives the preprocessing.</para>
/// <para>Thread-safe: <see cref="Explain"/> may run on several threads at once.</para>
/// </remarks>
public sealed class BeitAttentionExplainer : IDisposable
{
    private readonly BeitOnnxSession _session;

    private BeitAttentionExplainer(byte[] onnx, BeitImageProcessor processor, BeitOnnxSessionOptions? options, string source)
    {
        var model = ModelProto.Parser.ParseFrom(onnx);
        var config = model.MetadataProps.FirstOrDefault(p => p.Key == BeitOnnxNames.MetadataConfig)?.Value
            ?? throw new InvalidDataException($"'{source}': the ONNX model has no '{BeitOnnxNames.MetadataConfig}' metadata.");
        PatchSize = BeitConfig.FromJson(config).PatchSize;
        Processor = processor;
        _session = new BeitOnnxSession(onnx, options);
        try
        {
            if (processor.FixedOutputSize() is not { } size || size.Height != _session.ImageHeight || size.Width != _session.ImageWidth)
                throw new InvalidDataException($"'{source}': the preprocessing gives {Describe(processor.FixedOutputSize())} but the graph takes {_session.ImageHeight}x{_session.ImageWidth}.");
            Grid = new PixelSize(_session.ImageHeight / PatchSize, _session.ImageWidth / PatchSize);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>The preprocessing applied to each image (also what <see cref="BeitHeatMap.Overlay"/> needs to place a map).</summary>
    public BeitImageProcessor Processor { get; }

    /// <summary>The model's patch size in pixels.</summary>
    public int PatchSize { get; }

    /// <summary>The patch grid of the model's input, <c>(height, width)</c>.</summary>
    public PixelSize Grid { get; }

    /// <summary>
    /// Exports the backbone of a Hugging Face checkpoint (folder or Hub id) at its <c>image_size</c> with attention
    /// outputs; preprocessing from its <c>preprocessor_config.json</c> (see <see cref="BeitImageProcessorEstimator.LoadProcessor"/>).
    /// </summary>
    public static BeitAttentionExplainer FromCheckpoint(string checkpoint, BeitOnnxSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpoint);
        string folder = Hub.BeitHub.LocalPath(checkpoint, Hub.BeitHubFiles.All);
        var processor = BeitImageProcessorEstimator.LoadProcessor(folder);
        var config = BeitConfig.Load(folder);
        // The preprocessing's output size is the graph's input (a checkpoint may be evaluated at another resolution).
        var size = processor.FixedOutputSize() ?? new PixelSize(config.ImageSize, config.ImageSize);
        var onnx = BeitOnnxExporter.ExportToBytes(folder, BeitOnnxTask.Features,
            new BeitOnnxExportOptions { OutputAttentions = true, ImageHeight = size.Height, ImageWidth = size.Width });
        return new BeitAttentionExplainer(onnx, processor, options, checkpoint);
    }

    /// <summary>
    /// Reads a <c>model.zip</c> saved by <c>beit package</c> (or any pipeline with a <c>BeitImageProcessor</c> stage and
    /// a BEiT ONNX stage written by this library's exporter), checked as <see cref="BeitModelZip"/> checks it.
    /// </summary>
    /// <exception cref="InvalidDataException">The zip is unsafe or invalid, or holds no graph this library exported (for example an ONNX file from <c>torch.onnx.export</c>): then explain the checkpoint folder instead.</exception>
    public static BeitAttentionExplainer FromModelZip(string path, BeitOnnxSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var ml = new MLContext();
        BeitImageProcessor processor;
        var loaded = BeitModelZip.Load(ml, path, out _);
        try
        {
            processor = BeitImageProcessorTransformer.FromLoaded(loaded).Processor;
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"Model '{path}' has no BeitImageProcessor stage, so its preprocessing is unknown.", e);
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
        byte[]? graph = null;
        string? skipped = null;
        using (var file = BeitFiles.OpenRead(path, BeitModelZip.MaxTotalBytes))
        {
            var entries = BeitModelZip.Validate(path, file);
            file.Position = 0;
            using var zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
            foreach (var name in entries)
            {
                var bytes = ReadOnnxEntry(path, zip.GetEntry(name)!);
                try
                {
                    var model = ParseOnnx(bytes);
                    RestorePixelInput(model);
                    BeitOnnxAttention.AddOutputs(model);
                    graph = model.ToByteArray();
                    break;
                }
                catch (Exception e) when (e is InvalidDataException or NotSupportedException)
                {
                    skipped ??= $"{name}: {e.Message}";
                }
            }
        }
        if (graph is null)
            throw new InvalidDataException($"Model '{path}' holds no ONNX graph whose attention can be exposed ({skipped ?? "it has no ONNX stage"}). " +
                "Explain the Hugging Face checkpoint folder it was packaged from instead.");
        return new BeitAttentionExplainer(graph, processor, options, path);
    }

    /// <summary>Preprocesses <paramref name="image"/> and returns its attention maps.</summary>
    public BeitAttentionMaps Explain(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return BeitAttentionMaps.FromOnnx(_session, Processor.Preprocess(image), PatchSize);
    }

    /// <summary>Releases the ONNX Runtime session.</summary>
    public void Dispose() => _session.Dispose();

    // ML.NET writes a byte array as its int32 length, then the bytes.
    private static byte[] ReadOnnxEntry(string path, ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var reader = new BinaryReader(stream);
        int length = entry.Length >= 4 ? reader.ReadInt32() : -1;
        if (length != entry.Length - 4)
            throw new InvalidDataException($"Model '{path}': entry '{entry.FullName}' holds {entry.Length:N0} bytes but its length prefix says {length:N0}.");
        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length) throw new InvalidDataException($"Model '{path}': entry '{entry.FullName}' is truncated.");
        return bytes;
    }

    private static ModelProto ParseOnnx(byte[] bytes)
    {
        try
        {
            return ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"not an ONNX model ({e.Message})", e);
        }
    }

    /// <summary>
    /// Undoes the ML.NET stage's input adapter (a flat <c>[batch, C·H·W]</c> input reshaped to <c>pixel_values</c> by
    /// <c>__beit_pixel_reshape</c>), so the graph takes <c>pixel_values [batch, C, H, W]</c> again.
    /// </summary>
    private static void RestorePixelInput(ModelProto model)
    {
        var graph = model.Graph;
        if (graph.Input.Any(i => i.Name == BeitOnnxNames.PixelValues)) return;
        int index = graph.Node.ToList().FindIndex(n => n.OpType == "Reshape" && n.Output.Count == 1 && n.Output[0] == BeitOnnxNames.PixelValues);
        if (index < 0 || graph.Input.Count != 1 || graph.Node[index].Input[0] != graph.Input[0].Name)
            throw new InvalidDataException($"the graph has neither a '{BeitOnnxNames.PixelValues}' input nor the stage's reshape to it");
        var shapeName = graph.Node[index].Input[1];
        var shape = graph.Initializer.FirstOrDefault(t => t.Name == shapeName);
        if (shape is null || shape.Int64Data.Count != 4 || shape.Int64Data.Skip(1).Any(d => d is <= 0 or > 1 << 16))
            throw new InvalidDataException("the stage's pixel reshape has no constant [-1, C, H, W] shape");
        long c = shape.Int64Data[1], h = shape.Int64Data[2], w = shape.Int64Data[3];
        graph.Node.RemoveAt(index);
        if (!graph.Node.Any(n => n.Input.Contains(shapeName))) graph.Initializer.Remove(shape);
        graph.Input.Clear();
        var dims = new TensorShapeProto();
        dims.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (var d in new[] { c, h, w }) dims.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        graph.Input.Add(new ValueInfoProto
        {
            Name = BeitOnnxNames.PixelValues,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = dims } },
        });
    }

    private static string Describe(PixelSize? size) => size is { } s ? $"{s.Height}x{s.Width}" : "a size that depends on the image";
}
