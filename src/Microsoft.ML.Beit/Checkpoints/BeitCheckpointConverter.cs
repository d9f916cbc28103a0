using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// <see cref="BeitCheckpoint.Convert"/>: reads a checkpoint of any family (<see cref="BeitCheckpointFamily"/>) and writes a
/// Hugging Face folder, inferring the configuration of timm state dicts from their tensor shapes.
/// </summary>
internal static class BeitCheckpointConverter
{
    // timm's BEiT uses LayerNorm(eps=1e-6) everywhere (timm/models/beit.py); Hugging Face's default 1e-12 would differ.
    private const double TimmLayerNormEps = 1e-6;
    // timm's default eval crop (timm.data.constants.DEFAULT_CROP_PCT), used by every BEiT pretrained_cfg.
    private const double TimmDefaultCropPct = 0.9;
    private static readonly double[] s_imageNetMean = [0.485, 0.456, 0.406];
    private static readonly double[] s_imageNetStd = [0.229, 0.224, 0.225];
    private static readonly double[] s_half = [0.5, 0.5, 0.5];

    public static BeitCheckpointFamily Convert(string input, string outputFolder, int? numAttentionHeads)
    {
        ArgumentException.ThrowIfNullOrEmpty(input);
        ArgumentException.ThrowIfNullOrEmpty(outputFolder);
        var (weightsPath, raw) = BeitCheckpoint.ReadRawTensors(input);
        string folder = Directory.Exists(input) ? input : Path.GetDirectoryName(Path.GetFullPath(input))!;
        string configPath = Path.Combine(folder, BeitConfig.FileName);
        var family = BeitCheckpointFamilies.Detect(raw);

        BeitConfig config;
        string? processorJson = null;
        if (family == BeitCheckpointFamily.Timm)
        {
            var timmConfig = File.Exists(configPath) ? ReadJson(configPath) : null;
            config = InferTimmConfig(raw, timmConfig, numAttentionHeads, weightsPath);
            processorJson = TimmProcessor(config, timmConfig, weightsPath).ToJson();
        }
        else
        {
            config = BeitConfig.Load(configPath);
            // The tensors are written under beit., so the classes that load them are the Beit ones.
            if (config.Architectures != null)
                config.Architectures = config.Architectures.Select(a => a.Replace("Data2VecVision", "Beit", StringComparison.Ordinal)).ToArray();
            string processorPath = Path.Combine(folder, BeitImageProcessor.ConfigFileName);
            if (File.Exists(processorPath))
            {
                processorJson = System.Text.Encoding.UTF8.GetString(IO.BeitFiles.ReadAllBytesData(processorPath, BeitLimits.MaxPreprocessorConfigFileBytes));
                BeitImageProcessor.FromJson(processorJson, processorPath); // refuse a broken file rather than copy it
            }
        }

        var tensors = BeitWeightNames.ToClassic(BeitCheckpointFamilies.ToHuggingFace(raw, weightsPath), weightsPath)
            .Where(kv => !BeitWeightNames.IsIgnoredOnLoad(kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        Write(outputFolder, config, tensors, processorJson);
        return family;
    }

    /// <summary>
    /// Writes the files as one change (<see cref="IO.AtomicFile.WriteMany"/>): all to temporary names first, then renamed
    /// weights first and <c>config.json</c>, which marks a folder as a checkpoint, last, so no reader ever sees a
    /// half-written file and a failure while writing leaves the previous conversion as it was.
    /// </summary>
    private static void Write(string outputFolder, BeitConfig config, IReadOnlyDictionary<string, TensorData> tensors, string? processorJson)
    {
        config.Validate();
        string target = Path.GetFullPath(outputFolder).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        if (Path.GetDirectoryName(target) is null) throw new ArgumentException($"'{outputFolder}' has no parent folder.", nameof(outputFolder));
        string json = config.ToJson();
        IO.AtomicFile.WriteMany(
        [
            (Path.Combine(target, SafeTensors.ModelFileName), tmp => SafeTensors.WriteFile(tmp, tensors, new Dictionary<string, string> { ["format"] = "pt" })),
            // Without a processor of its own, one left from an earlier conversion would not belong to these weights: deleted.
            (Path.Combine(target, BeitImageProcessor.ConfigFileName), processorJson == null ? null : tmp => File.WriteAllText(tmp, processorJson)),
            (Path.Combine(target, BeitConfig.FileName), tmp => File.WriteAllText(tmp, json)),
        ]);
    }

    private static JsonObject ReadJson(string path) => UntrustedJson.ReadObjectFile(path, BeitLimits.MaxConfigFileBytes);

    /// <summary>True for the <c>config.json</c> timm writes to the Hub (<c>architecture</c>, <c>pretrained_cfg</c>, no <c>model_type</c>).</summary>
    internal static bool IsTimmConfig(JsonObject root) => root["model_type"] is null && root["architecture"] is not null;

    /// <summary>
    /// The Hugging Face configuration of a timm BEiT state dict, from its tensor shapes: width and channels from
    /// <c>patch_embed.proj</c>, layers from the <c>blocks.N</c> indices, heads from a relative position table (or
    /// <paramref name="numAttentionHeads"/>), the native grid from <c>pos_embed</c> or a relative position table.
    /// </summary>
    internal static BeitConfig InferTimmConfig(IReadOnlyDictionary<string, TensorData> t, JsonObject? timmConfig, int? numAttentionHeads, string source)
    {
        InvalidDataException Fail(string why) => new($"'{source}': {why}");
        long[] Shape(string name, int rank) =>
            t.TryGetValue(name, out var x) ? x.Shape.Length == rank ? x.Shape : throw Fail($"'{name}' has shape [{string.Join(",", x.Shape)}], expected rank {rank}.")
                                           : throw Fail($"a timm BEiT state dict needs '{name}'.");
        int Dim(long v, string what) => v is > 0 and <= 1 << 20 ? (int)v : throw Fail($"{what} {v} is out of range.");

        var proj = Shape("patch_embed.proj.weight", 4);
        if (proj[2] != proj[3]) throw Fail($"patch_embed.proj.weight has a non-square {proj[2]}x{proj[3]} kernel.");
        int hidden = Dim(proj[0], "hidden size"), channels = Dim(proj[1], "channel count"), patch = Dim(proj[2], "patch size");

        var blockIds = t.Keys.Where(k => k.StartsWith("blocks.", StringComparison.Ordinal))
            .Select(k => k.Split('.')[1]).Distinct().Select(s => int.TryParse(s, out var i) ? i : -1).ToList();
        if (blockIds.Count == 0 || blockIds.Min() != 0 || blockIds.Max() != blockIds.Count - 1)
            throw Fail("the blocks.N indices are not 0..L-1.");
        int layers = blockIds.Count;
        int intermediate = Dim(Shape("blocks.0.mlp.fc1.weight", 2)[0], "MLP width");

        string layerTable = "blocks.0.attn.relative_position_bias_table", sharedTable = "rel_pos_bias.relative_position_bias_table";
        string? table = t.ContainsKey(layerTable) ? layerTable : t.ContainsKey(sharedTable) ? sharedTable : null;
        int heads;
        if (table != null)
        {
            heads = Dim(Shape(table, 2)[1], "head count");
            if (numAttentionHeads is int given && given != heads)
                throw Fail($"{table} has {heads} heads, but {given} were given.");
        }
        else
        {
            heads = numAttentionHeads ?? throw Fail("the head count cannot be inferred without a relative position table; give it (beit convert --num-heads).");
        }

        int grid;
        if (t.ContainsKey("pos_embed"))
        {
            long n = Shape("pos_embed", 3)[1] - 1;
            grid = (int)Math.Round(Math.Sqrt(n));
            if (n <= 0 || (long)grid * grid != n) throw Fail($"pos_embed holds {n} patch positions, not a square grid.");
        }
        else if (table != null)
        {
            // rows = (2G − 1)² + 3 (three CLS rows), as Hugging Face's BeitRelativePositionBias sizes it.
            long rows = Shape(table, 2)[0] - 3;
            int side = (int)Math.Round(Math.Sqrt(rows));
            if (rows <= 0 || (long)side * side != rows || side % 2 == 0) throw Fail($"{table} has {rows + 3} rows, not (2G-1)²+3.");
            grid = (side + 1) / 2;
        }
        else throw Fail("the input size cannot be inferred: there is neither pos_embed nor a relative position table.");

        bool lmHead = t.ContainsKey("lm_head.weight");
        var config = new BeitConfig
        {
            HiddenSize = hidden,
            NumChannels = channels,
            PatchSize = patch,
            ImageSize = checked(grid * patch),
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            IntermediateSize = intermediate,
            LayerNormEps = TimmLayerNormEps,
            UseAbsolutePositionEmbeddings = t.ContainsKey("pos_embed"),
            UseRelativePositionBias = t.ContainsKey(layerTable),
            UseSharedRelativePositionBias = t.ContainsKey(sharedTable),
            UseMaskToken = t.ContainsKey("mask_token"),
            LayerScaleInitValue = t.ContainsKey("blocks.0.gamma_1") ? 0.1 : 0.0,
            // timm pools by fc_norm(mean of patches) when global_pool='avg', else by the CLS token after norm; unilm's
            // pre-training model has a bare norm before lm_head, which Hugging Face puts on the head (mean pooling kept).
            UseMeanPooling = lmHead || t.ContainsKey("fc_norm.weight"),
            Architectures = [lmHead ? "BeitForMaskedImageModeling" : t.ContainsKey("head.weight") ? "BeitForImageClassification" : "BeitModel"],
        };
        if (lmHead) config.VocabSize = Dim(Shape("lm_head.weight", 2)[0], "vocabulary size");
        if (t.ContainsKey("head.weight"))
        {
            int labels = Dim(Shape("head.weight", 2)[0], "class count");
            var names = timmConfig?["label_names"] as JsonArray;
            if (names != null && names.Count == labels && names.All(n => n?.GetValueKind() == JsonValueKind.String))
                config.Id2Label = new SortedDictionary<int, string>(names.Select((n, i) => (i, (string)n!)).ToDictionary(p => p.i, p => p.Item2));
            else
                config.NumLabels = labels;
        }
        if (timmConfig?["architecture"] is JsonNode arch && arch.GetValueKind() == JsonValueKind.String)
            config.ExtraFields["timm_architecture"] = (string?)arch;
        config.Validate();
        return config;
    }

    /// <summary>
    /// timm's evaluation transform as a <see cref="BeitImageProcessor"/>: shortest edge to <c>⌊size / crop_pct⌋</c>, center
    /// crop, timm's interpolation, and the pretrained configuration's mean and std. Without a timm <c>config.json</c>,
    /// BEiT v2 (an architecture or file name containing <c>beitv2</c>) uses the ImageNet statistics and BEiT v1 uses 0.5,
    /// as timm's <c>beit.py</c> default configurations do.
    /// </summary>
    internal static BeitImageProcessor TimmProcessor(BeitConfig config, JsonObject? timmConfig, string source)
    {
        var cfg = timmConfig?["pretrained_cfg"] as JsonObject;
        string name = (timmConfig?["architecture"] is JsonNode a && a.GetValueKind() == JsonValueKind.String ? (string?)a : null) ?? Path.GetFileName(source);
        bool v2 = name.Contains("beitv2", StringComparison.OrdinalIgnoreCase);
        double[] Channels(string key, double[] fallback) =>
            cfg?[key] is JsonArray arr && arr.Count == 3 && arr.All(v => v?.GetValueKind() == JsonValueKind.Number)
                ? arr.Select(v => v!.GetValue<double>()).ToArray()
                : fallback;
        double cropPct = cfg?["crop_pct"] is JsonNode c && c.GetValueKind() == JsonValueKind.Number ? c.GetValue<double>() : TimmDefaultCropPct;
        if (cropPct is <= 0 or > 1) throw new InvalidDataException($"'{source}': crop_pct {cropPct} is outside (0, 1].");
        var resample = cfg?["interpolation"] is JsonNode i && i.GetValueKind() == JsonValueKind.String && (string?)i == "bilinear"
            ? PillowResample.Bilinear : PillowResample.Bicubic;
        int size = config.ImageSize;
        return new BeitImageProcessor
        {
            // timm.data.transforms_factory: scale_size = floor(img_size / crop_pct), Resize(shorter side), CenterCrop(img_size).
            Size = ResizeSize.Shortest((int)Math.Floor(size / cropPct)),
            Resample = resample,
            DoCenterCrop = true,
            CropSize = new PixelSize(size, size),
            ImageMean = Channels("mean", v2 ? s_imageNetMean : s_half),
            ImageStd = Channels("std", v2 ? s_imageNetStd : s_half),
        };
    }
}
