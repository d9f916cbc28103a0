using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Beit.Processing;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>The stages a saved pipeline can hold; the names are stored in models, never rename them.</summary>
internal static class BeitStages
{
    public const string LoadImages = "LoadImages";
    public const string ProcessImages = "ProcessImages";
    public const string Classifier = "Classifier";
    public const string Featurizer = "Featurizer";
    public const string Segmenter = "Segmenter";
}

/// <summary>
/// The small state a stage's stateless mappings need at scoring time (column names for messages, decoder and
/// processor settings, the model's input size, label names). It travels in the model as a constant string column
/// made by a built-in <c>Expression</c> transform, so a fresh process that loads the zip gets it back without our
/// code having to be registered anywhere.
/// </summary>
internal sealed class BeitStageConfig
{
    /// <summary>Bumped only with a new contract version; version-1 mappings read version-1 configs.</summary>
    public const int CurrentVersion = 1;

    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static readonly ConditionalWeakTable<string, BeitStageConfig> s_cache = new();

    private BeitImageProcessor? _processor;

    public int Version { get; set; } = CurrentVersion;
    public string Stage { get; set; } = "";
    /// <summary>The user's input column (named in error messages).</summary>
    public string Column { get; set; } = "";
    /// <summary>The user's main output column.</summary>
    public string Output { get; set; } = "";
    /// <summary>Segmenter: the decoded-image column that gives each row's original size; null = label map at the model's input size.</summary>
    public string? ImageColumn { get; set; }
    public bool ApplyExifOrientation { get; set; }
    public long MaxPixels { get; set; } = ImageDecoderOptions.DefaultMaxPixels;
    /// <summary>LoadImages: the largest image file read (absent in models saved before it existed: the default).</summary>
    public long MaxFileBytes { get; set; } = ImageDecoderOptions.DefaultMaxFileBytes;
    /// <summary>LoadImages: the folder paths are relative to (and must stay inside), or null (absent in older models).</summary>
    public string? ImageFolder { get; set; }
    /// <summary>LoadImages: the user's error column, or null when a bad image throws.</summary>
    public string? ErrorColumn { get; set; }
    /// <summary>ProcessImages: the processor as <c>preprocessor_config.json</c> text.</summary>
    public string? Processor { get; set; }
    /// <summary>Model stages: the input the ONNX graph expects, <c>[Channels, Height, Width]</c>.</summary>
    public int Channels { get; set; }
    public int Height { get; set; }
    public int Width { get; set; }
    /// <summary>Classifier and segmenter: class names by index (made unique).</summary>
    public string[]? Labels { get; set; }
    /// <summary>Segmenter: the logits' spatial size.</summary>
    public int LogitsHeight { get; set; }
    public int LogitsWidth { get; set; }
    /// <summary>Featurizer: the embedding width and the number of patch tokens.</summary>
    public int HiddenSize { get; set; }
    public int NumPatches { get; set; }

    public int InputLength => Channels * Height * Width;

    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    /// <summary>
    /// Parses a config column value. The Expression transform hands out the same string instance for every row, so
    /// the parse is cached by reference (and a new instance simply parses again).
    /// </summary>
    public static BeitStageConfig Get(string json) => s_cache.GetValue(json, Parse);

    /// <summary>How many configs were parsed (tests check the per-row cache holds).</summary>
    internal static long ParseCount;

    public static BeitStageConfig Parse(string json)
    {
        Interlocked.Increment(ref ParseCount);
        BeitStageConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<BeitStageConfig>(json, s_json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The BEiT stage configuration stored in the model is not valid JSON: {e.Message}", e);
        }
        if (config == null || config.Version != CurrentVersion)
            throw new InvalidDataException($"The BEiT stage configuration stored in the model has version {config?.Version}; this library reads version {CurrentVersion}.");
        return config;
    }

    /// <summary>The processor of a ProcessImages stage, built once per config.</summary>
    public BeitImageProcessor GetProcessor() =>
        _processor ??= BeitImageProcessor.FromJson(Processor ?? throw new InvalidDataException("The stage configuration has no processor."), "the model's BeitImageProcessor stage");

    public ImageDecoderOptions DecoderOptions() => new() { ApplyExifOrientation = ApplyExifOrientation, MaxPixels = MaxPixels, MaxFileBytes = MaxFileBytes };

    /// <summary>The <c>Expression</c> that yields this config as a constant text column (a C#-style verbatim string literal).</summary>
    public string ToExpression() => "x : @\"" + ToJson().Replace("\"", "\"\"") + "\"";
}
