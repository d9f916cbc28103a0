namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>Reads a Hugging Face checkpoint folder: <c>config.json</c> plus its weights.</summary>
public static class BeitCheckpoint
{
    /// <summary>
    /// Reads the weights of a checkpoint folder by Hugging Face's precedence: <c>model.safetensors</c>,
    /// then <c>model.safetensors.index.json</c> (sharded).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder holds no weights file this reader understands.</exception>
    public static Dictionary<string, TensorData> ReadTensors(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Checkpoint folder '{folder}' does not exist.");
        string single = Path.Combine(folder, SafeTensors.ModelFileName);
        if (File.Exists(single)) return SafeTensors.Read(single);
        string index = Path.Combine(folder, SafeTensors.IndexFileName);
        if (File.Exists(index)) return SafeTensors.Read(index);
        throw new FileNotFoundException($"Checkpoint folder '{folder}' has no {SafeTensors.ModelFileName} or {SafeTensors.IndexFileName}.");
    }

    /// <summary>Reads both the configuration and the weights of a checkpoint folder.</summary>
    public static (BeitConfig Config, Dictionary<string, TensorData> Tensors) Load(string folder) =>
        (BeitConfig.Load(folder), ReadTensors(folder));
}
