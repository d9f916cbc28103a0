using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Estimators.Mappings;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Onnx.Proto;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>Options of <see cref="BeitTritonExport.Write"/>.</summary>
public sealed class BeitTritonExportOptions
{
    /// <summary>The model's name in the repository (its folder); null: the model file's or folder's name.</summary>
    public string? Name { get; set; }

    /// <summary>Triton's <c>max_batch_size</c> (default 8): the largest batch dynamic batching forms.</summary>
    public int MaxBatchSize { get; set; } = 8;
}

/// <summary>
/// Writes a Triton Inference Server model repository entry for a BEiT model (a <c>model.zip</c> made by
/// <c>beit package</c>, or a checkpoint folder): <c>&lt;repository&gt;/&lt;name&gt;/config.pbtxt</c> (platform
/// <c>onnxruntime_onnx</c>, <c>max_batch_size</c>, dims without the batch dimension, <c>dynamic_batching</c>),
/// <c>1/model.onnx</c>, <c>labels.txt</c> (classification: Triton's <c>label_filename</c>, so clients can ask for
/// top-k labels with the classification extension) and <c>preprocessor_config.json</c> (Triton runs no
/// preprocessing: clients send <c>pixel_values</c> preprocessed as it says).
/// </summary>
/// <remarks>
/// The graph is the one <c>beit predict</c> runs, with the input restored to <c>pixel_values [batch, 3, H, W]</c>
/// and the output named as in Hugging Face's models: <c>probabilities</c>, <c>logits</c> (segmentation) or
/// <c>pooler_output</c> (features). See Triton's model configuration documentation
/// (<c>docs/user_guide/model_configuration.md</c> in triton-inference-server/server).
/// </remarks>
public static class BeitTritonExport
{
    /// <summary>The file holding the class names, one per line, in class-index order.</summary>
    public const string LabelsFileName = "labels.txt";

    private static readonly Regex s_name = new("^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", RegexOptions.CultureInvariant);

    /// <summary>Writes the model's folder into <paramref name="repository"/> atomically (an existing one is replaced whole); returns its path.</summary>
    /// <exception cref="ArgumentException">The name is not a plain folder name, or MaxBatchSize is not 1 to 4096.</exception>
    public static string Write(string model, string repository, BeitTritonExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(repository);
        options ??= new BeitTritonExportOptions();
        if (options.MaxBatchSize < 1 || options.MaxBatchSize > 4096)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatchSize, "MaxBatchSize must be 1 to 4096.");
        string name = options.Name ?? DefaultName(model);
        if (!s_name.IsMatch(name) || name.Contains(".."))
            throw new ArgumentException($"'{name}' is not a usable Triton model name (letters, digits, '_', '.', '-'; set a name).", nameof(options));
        var resolved = BeitBatchScorer.Resolve(model);
        var onnx = TritonGraph(resolved, out var output);
        string config = Config(name, options.MaxBatchSize, resolved, output);
        string folder = Path.Combine(repository, name);
        AtomicFile.WriteFolder(folder, tmp =>
        {
            Directory.CreateDirectory(Path.Combine(tmp, "1"));
            File.WriteAllBytes(Path.Combine(tmp, "1", "model.onnx"), onnx);
            File.WriteAllText(Path.Combine(tmp, "config.pbtxt"), config);
            if (resolved.Model.Labels is { } labels) File.WriteAllText(Path.Combine(tmp, LabelsFileName), string.Concat(labels.Select(l => l.ReplaceLineEndings(" ") + "\n")));
            File.WriteAllText(Path.Combine(tmp, BeitImageProcessingConfigName), resolved.Processor.ToJson());
        });
        return folder;
    }

    private const string BeitImageProcessingConfigName = "preprocessor_config.json";

    private static string DefaultName(string model)
    {
        string full = Path.GetFullPath(model).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        return Directory.Exists(full) ? Path.GetFileName(full) : Path.GetFileNameWithoutExtension(full);
    }

    /// <summary>The stage graph with the <c>[batch, C·H·W]</c> input turned back into <c>pixel_values [batch, C, H, W]</c> and the output given its public name.</summary>
    internal static byte[] TritonGraph(BeitScoringModel resolved, out string output)
    {
        var proto = ModelProto.Parser.ParseFrom(resolved.Onnx);
        var g = proto.Graph;
        int reshape = g.Node.ToList().FindIndex(n => n.Output.Count == 1 && n.Output[0] == BeitOnnxNames.PixelValues && n.Input.Count == 2 && n.Input[0] == BeitColumns.PixelValues);
        int input = g.Input.ToList().FindIndex(v => v.Name == BeitColumns.PixelValues);
        if (reshape < 0 || input < 0) throw new InvalidDataException("The model's graph does not start with the flattened pixel input a BEiT stage has.");
        string shape = g.Node[reshape].Input[1];
        g.Node.RemoveAt(reshape);
        if (!g.Node.Any(n => n.Input.Contains(shape)))
            for (int i = g.Initializer.Count - 1; i >= 0; i--) if (g.Initializer[i].Name == shape) g.Initializer.RemoveAt(i);
        var m = resolved.Model;
        g.Input[input] = OnnxGraphAdapters.ValueInfo(BeitOnnxNames.PixelValues, TensorProto.Types.DataType.Float, OnnxGraphAdapters.Batch, (long)m.Channels, (long)m.Height, (long)m.Width);
        var (internalName, _) = resolved.Output;
        output = resolved.Task switch
        {
            BeitScoringTask.ImageClassification => BeitOnnxNames.Probabilities,
            BeitScoringTask.Features => BeitOnnxNames.PoolerOutput,
            _ => BeitOnnxNames.Logits,
        };
        var kept = g.Output.Single(o => o.Name == internalName);
        OnnxGraphAdapters.Rename(g, internalName, output);
        kept.Name = output;
        for (int i = g.Output.Count - 1; i >= 0; i--) if (g.Output[i] != kept) g.Output.RemoveAt(i);
        // Graph inputs and outputs carry their own shapes; a second declaration in value_info would conflict.
        for (int i = g.ValueInfo.Count - 1; i >= 0; i--)
            if (g.ValueInfo[i].Name == BeitOnnxNames.PixelValues || g.ValueInfo[i].Name == output) g.ValueInfo.RemoveAt(i);
        return proto.ToByteArray();
    }

    /// <summary>The <c>config.pbtxt</c> text (protobuf text format of Triton's <c>ModelConfig</c>).</summary>
    internal static string Config(string name, int maxBatchSize, BeitScoringModel resolved, string output)
    {
        var m = resolved.Model;
        long[] outputDims = resolved.Task switch
        {
            BeitScoringTask.ImageClassification => [m.Labels!.Length],
            BeitScoringTask.Features => [m.HiddenSize],
            _ => [m.Labels!.Length, m.LogitsHeight, m.LogitsWidth],
        };
        var t = new StringBuilder();
        t.Append(CultureInfo.InvariantCulture, $"name: \"{name}\"\n");
        t.Append("platform: \"onnxruntime_onnx\"\n");
        t.Append(CultureInfo.InvariantCulture, $"max_batch_size: {maxBatchSize}\n");
        t.Append("input [\n  {\n");
        t.Append(CultureInfo.InvariantCulture, $"    name: \"{BeitOnnxNames.PixelValues}\"\n    data_type: TYPE_FP32\n    dims: [ {m.Channels}, {m.Height}, {m.Width} ]\n");
        t.Append("  }\n]\n");
        t.Append("output [\n  {\n");
        t.Append(CultureInfo.InvariantCulture, $"    name: \"{output}\"\n    data_type: TYPE_FP32\n    dims: [ {string.Join(", ", outputDims)} ]\n");
        if (resolved.Task == BeitScoringTask.ImageClassification) t.Append(CultureInfo.InvariantCulture, $"    label_filename: \"{LabelsFileName}\"\n");
        t.Append("  }\n]\n");
        t.Append("dynamic_batching { }\n");
        return t.ToString();
    }
}
