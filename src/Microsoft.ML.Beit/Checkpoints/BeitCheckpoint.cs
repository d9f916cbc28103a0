using Microsoft.ML.Beit.Hub;
using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>Reads and writes a Hugging Face checkpoint folder: <c>config.json</c> plus its weights.</summary>
public static class BeitCheckpoint
{
    /// <summary>
    /// Reads the weights of a checkpoint folder (or Hugging Face model id, see <see cref="BeitHub"/>) by Hugging Face's precedence: <c>model.safetensors</c>,
    /// <c>model.safetensors.index.json</c> (sharded), <c>pytorch_model.bin</c>, then <c>pytorch_model.bin.index.json</c>.
    /// PyTorch files go through a restricted unpickler (<see cref="PyTorchCheckpoint"/>). Names come back in the classic
    /// Hugging Face spelling (<see cref="BeitWeightNames.ToClassic(string)"/>), whatever transformers version wrote them,
    /// and checkpoints of the other BEiT families (<see cref="BeitCheckpointFamily"/>: data2vec-vision, timm) are renamed
    /// to Hugging Face's <c>Beit*</c> names.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder holds no weights file this reader understands.</exception>
    /// <exception cref="UnsafePickleException">A <c>pytorch_model.bin</c> names a global a state dict never needs.</exception>
    /// <exception cref="InvalidDataException">A weights file is damaged or exceeds a limit; the message names it.</exception>
    /// <exception cref="CheckpointMismatchException">A weight is not floating-point (for example I32); the message names it and the file.</exception>
    public static Dictionary<string, TensorData> ReadTensors(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = BeitHub.LocalPath(folder, BeitHubFiles.Weights);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Checkpoint folder '{folder}' does not exist.");
        var (path, raw) = ReadRawTensors(folder);
        // The one place both consumers (the ONNX exporter and the TorchSharp model) get file tensors from.
        var tensors = BeitWeightNames.ToClassic(BeitCheckpointFamilies.ToHuggingFace(raw, path), path);
        CheckpointMismatchException.ThrowIfNotFloat(tensors, path);
        return tensors;
    }

    /// <summary>
    /// The tensors of a checkpoint folder (by <see cref="ReadTensors"/>' precedence) or of one weights file
    /// (<c>.safetensors</c>, a <c>torch.save</c> state dict such as <c>.bin</c>/<c>.pth</c>/<c>.pt</c>, or a sharded
    /// <c>.index.json</c>), under the names the file uses, with the path that was read.
    /// </summary>
    internal static (string Path, Dictionary<string, TensorData> Tensors) ReadRawTensors(string input)
    {
        if (File.Exists(input))
        {
            string name = Path.GetFileName(input);
            bool safetensors = name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
                || name.Equals(SafeTensors.IndexFileName, StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase);
            return (input, safetensors ? SafeTensors.Read(input) : PyTorchCheckpoint.Read(input));
        }
        if (!Directory.Exists(input)) throw new FileNotFoundException($"Checkpoint '{input}' is neither a folder nor a file.", input);
        string path = FindWeights(input);
        return (path, Path.GetFileName(path) is SafeTensors.ModelFileName or SafeTensors.IndexFileName ? SafeTensors.Read(path) : PyTorchCheckpoint.Read(path));
    }

    /// <summary>
    /// The weights file of a checkpoint folder by Hugging Face's precedence: <c>model.safetensors</c>,
    /// <c>model.safetensors.index.json</c>, <c>pytorch_model.bin</c>, then <c>pytorch_model.bin.index.json</c>.
    /// </summary>
    private static string FindWeights(string folder)
    {
        foreach (string name in new[] { SafeTensors.ModelFileName, SafeTensors.IndexFileName, PyTorchCheckpoint.ModelFileName, PyTorchCheckpoint.IndexFileName })
        {
            string path = Path.Combine(folder, name);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException($"Checkpoint folder '{folder}' has no {SafeTensors.ModelFileName}, {SafeTensors.IndexFileName}, " +
                                        $"{PyTorchCheckpoint.ModelFileName} or {PyTorchCheckpoint.IndexFileName}.");
    }

    /// <summary>
    /// Converts a checkpoint of any BEiT family into a Hugging Face folder (<c>config.json</c>, <c>model.safetensors</c>
    /// and, when known, <c>preprocessor_config.json</c>) that transformers' <c>BeitFor*</c> classes and this library load:
    /// Hugging Face BEiT and DiT folders, <c>Data2VecVision*</c> folders (backbone renamed from <c>data2vec_vision.</c> to
    /// <c>beit.</c>), and timm / unilm BEiT and BEiT v2 state dicts (tensors renamed and <c>qkv</c> split; the configuration
    /// inferred from tensor shapes; mean, std, crop and interpolation from timm's <c>config.json</c> when present).
    /// </summary>
    /// <param name="input">A checkpoint folder, or one weights file (<c>.safetensors</c>, <c>.bin</c>, <c>.pth</c>, <c>.pt</c>); a
    /// <c>config.json</c> next to it is read (required except for timm).</param>
    /// <param name="outputFolder">The folder to write; files are staged in a sibling folder and renamed into place.</param>
    /// <param name="numAttentionHeads">timm only: the head count, needed when the checkpoint has no relative position table to infer it from.</param>
    /// <returns>The family the input belonged to.</returns>
    /// <exception cref="InvalidDataException">The input is damaged, or a timm state dict cannot be mapped; the message names the file.</exception>
    /// <exception cref="FileNotFoundException">No weights, or a non-timm checkpoint without <c>config.json</c>.</exception>
    public static BeitCheckpointFamily Convert(string input, string outputFolder, int? numAttentionHeads = null) =>
        BeitCheckpointConverter.Convert(input, outputFolder, numAttentionHeads);

    /// <summary>
    /// Describes a checkpoint folder (or Hugging Face model id, see <see cref="BeitHub"/>) without building a model: its
    /// configuration, <c>preprocessor_config.json</c> when present, labels, and every tensor's name, dtype and shape, from
    /// the weights file <see cref="ReadTensors"/> would pick. Safetensors files (single or sharded) are read by their JSON
    /// headers only; a <c>pytorch_model.bin</c> is read whole, through the restricted unpickler.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder has no <c>config.json</c> or no weights file this reader understands.</exception>
    /// <exception cref="InvalidDataException">A file is damaged or invalid; the message names it.</exception>
    /// <exception cref="UnsafePickleException">A <c>pytorch_model.bin</c> names a global a state dict never needs.</exception>
    public static BeitCheckpointInfo Describe(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = BeitHub.LocalPath(folder, BeitHubFiles.All);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Checkpoint folder '{folder}' does not exist.");
        var config = BeitConfig.Load(folder);
        // BeitConfig keeps no model_type (it also accepts data2vec-vision and timm files); Load has already parsed the file.
        var modelType = UntrustedJson.ReadObjectFile(Path.Combine(folder, BeitConfig.FileName), BeitLimits.MaxConfigFileBytes)["model_type"] is
            System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? mt) ? mt : null;
        var preprocessor = File.Exists(Path.Combine(folder, BeitImageProcessor.ConfigFileName)) ? BeitImageProcessor.FromPretrained(folder) : null;

        // Without id2label, transformers names classes LABEL_i; bound num_labels before allocating that many names.
        const int MaxUnnamedLabels = 1 << 20;
        if (config.Id2Label.Count == 0 && config.NumLabels > MaxUnnamedLabels)
            throw new InvalidDataException($"'{Path.Combine(folder, BeitConfig.FileName)}': num_labels {config.NumLabels} exceeds {MaxUnnamedLabels}.");
        var labels = Enumerable.Range(0, config.NumLabels).Select(config.LabelName).ToArray();

        string weights = FindWeights(folder);
        var shards = new List<string>();
        var shapes = Path.GetFileName(weights) switch
        {
            SafeTensors.ModelFileName or SafeTensors.IndexFileName => SafeTensors.ReadShapes(weights, shards),
            PyTorchCheckpoint.ModelFileName => ShapesOf(PyTorchCheckpoint.Read(weights)),
            _ => ShardedCheckpoint.Read(weights, shard => ShapesOf(PyTorchCheckpoint.Read(shard)), shards),
        };
        return new BeitCheckpointInfo
        {
            Folder = folder,
            ModelType = modelType,
            Config = config,
            Preprocessor = preprocessor,
            Labels = labels,
            Tensors = shapes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value.DType, kv.Value.Shape)).ToArray(),
            WeightFiles = [Path.GetFileName(weights), .. shards],
        };

        // The .bin reader has no header-only mode; the data is dropped as soon as each shard's shapes are taken.
        static Dictionary<string, (TensorDType DType, long[] Shape)> ShapesOf(Dictionary<string, TensorData> tensors) =>
            tensors.ToDictionary(kv => kv.Key, kv => (kv.Value.DType, kv.Value.Shape));
    }

    /// <summary>Reads both the configuration and the weights of a checkpoint folder or Hugging Face model id.</summary>
    public static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = BeitHub.LocalPath(folder, BeitHubFiles.Configuration | BeitHubFiles.Weights);
        return (BeitConfig.Load(folder), ReadTensors(folder));
    }

    /// <summary>
    /// Writes a folder Hugging Face transformers loads with <c>from_pretrained</c>: <c>config.json</c> and
    /// <c>model.safetensors</c> (metadata <c>format=pt</c>). Both files are written to temporary names first and
    /// renamed only when both are complete (<see cref="IO.AtomicFile.WriteMany"/>; <c>config.json</c>, which marks a
    /// folder as a checkpoint, last), so a failure leaves the previous checkpoint (if any) intact.
    /// </summary>
    public static void Save(string folder, BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        config.Validate();
        string json = config.ToJson();
        IO.AtomicFile.WriteMany(
        [
            (Path.Combine(folder, SafeTensors.ModelFileName), tmp => SafeTensors.WriteFile(tmp, tensors, new Dictionary<string, string> { ["format"] = "pt" })),
            (Path.Combine(folder, BeitConfig.FileName), tmp => File.WriteAllText(tmp, json)),
        ]);
    }
}
