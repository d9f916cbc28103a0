namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>Reads and writes a Hugging Face checkpoint folder: <c>config.json</c> plus its weights.</summary>
public static class BeitCheckpoint
{
    /// <summary>
    /// Reads the weights of a checkpoint folder by Hugging Face's precedence: <c>model.safetensors</c>,
    /// <c>model.safetensors.index.json</c> (sharded), <c>pytorch_model.bin</c>, then <c>pytorch_model.bin.index.json</c>.
    /// PyTorch files go through a restricted unpickler (<see cref="PyTorchCheckpoint"/>). Names come back in the classic
    /// Hugging Face spelling (<see cref="BeitWeightNames.ToClassic(string)"/>), whatever transformers version wrote them.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder holds no weights file this reader understands.</exception>
    /// <exception cref="UnsafePickleException">A <c>pytorch_model.bin</c> names a global a state dict never needs.</exception>
    /// <exception cref="InvalidDataException">A weights file is damaged or exceeds a limit; the message names it.</exception>
    /// <exception cref="CheckpointMismatchException">A weight is not floating-point (for example I32); the message names it and the file.</exception>
    public static Dictionary<string, TensorData> ReadTensors(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Checkpoint folder '{folder}' does not exist.");
        foreach (var (name, read) in new (string, Func<string, Dictionary<string, TensorData>>)[]
        {
            (SafeTensors.ModelFileName, SafeTensors.Read),
            (SafeTensors.IndexFileName, SafeTensors.Read),
            (PyTorchCheckpoint.ModelFileName, PyTorchCheckpoint.Read),
            (PyTorchCheckpoint.IndexFileName, PyTorchCheckpoint.Read),
        })
        {
            string path = Path.Combine(folder, name);
            if (!File.Exists(path)) continue;
            // The one place both consumers (the ONNX exporter and the TorchSharp model) get file tensors from.
            var tensors = BeitWeightNames.ToClassic(read(path), path);
            CheckpointMismatchException.ThrowIfNotFloat(tensors, path);
            return tensors;
        }
        throw new FileNotFoundException($"Checkpoint folder '{folder}' has no {SafeTensors.ModelFileName}, {SafeTensors.IndexFileName}, " +
                                        $"{PyTorchCheckpoint.ModelFileName} or {PyTorchCheckpoint.IndexFileName}.");
    }

    /// <summary>Reads both the configuration and the weights of a checkpoint folder.</summary>
    public static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string folder) =>
        (BeitConfig.Load(folder), ReadTensors(folder));

    /// <summary>
    /// Writes a folder Hugging Face transformers loads with <c>from_pretrained</c>: <c>config.json</c> and
    /// <c>model.safetensors</c> (metadata <c>format=pt</c>). Both files are written to temporary names first and
    /// renamed only when both are complete, so a failure leaves the previous checkpoint (if any) intact.
    /// </summary>
    public static void Save(string folder, BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        config.Validate();
        Directory.CreateDirectory(folder);
        string weights = Path.Combine(folder, SafeTensors.ModelFileName);
        string cfg = Path.Combine(folder, BeitConfig.FileName);
        string weightsTmp = weights + ".tmp", cfgTmp = cfg + ".tmp";
        try
        {
            using (var fs = new FileStream(weightsTmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                SafeTensors.Write(fs, tensors, new Dictionary<string, string> { ["format"] = "pt" });
            }
            File.WriteAllText(cfgTmp, config.ToJson());
            File.Move(weightsTmp, weights, overwrite: true);
            File.Move(cfgTmp, cfg, overwrite: true);
        }
        finally
        {
            foreach (var t in new[] { weightsTmp, cfgTmp })
            {
                try { if (File.Exists(t)) File.Delete(t); } catch (IOException) { }
            }
        }
    }
}
