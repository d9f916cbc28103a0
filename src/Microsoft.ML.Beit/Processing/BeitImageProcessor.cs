using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Hugging Face's <c>BeitImageProcessor</c> (the "slow", PIL/NumPy one), bit for bit: resize with Pillow's filters,
/// center crop (zero-padding images smaller than the crop), rescale in double then float32, normalize per channel in
/// float32, CHW float32 output. Also <c>do_reduce_labels</c> and resize/crop of segmentation label maps.
/// </summary>
/// <remarks>
/// <para>Class defaults are those of transformers v4.34 (the seed): resize to 256×256 bicubic, center crop 224×224,
/// rescale 1/255, mean = std = 0.5. Transformers v5 changed its class defaults to 224×224 with no crop; checkpoints
/// carry their own <c>preprocessor_config.json</c>, which <see cref="FromPretrained"/> reads and which always wins.</para>
/// <para>Instances are immutable once built (init-only properties) and thread-safe.</para>
/// </remarks>
public sealed class BeitImageProcessor
{
    /// <summary>The file name Hugging Face saves image processor settings under.</summary>
    public const string ConfigFileName = "preprocessor_config.json";

    private float[]? _lut;

    /// <summary>Resize the image (default true).</summary>
    public bool DoResize { get; init; } = true;

    /// <summary>The resize target (default 256×256).</summary>
    public ResizeSize Size { get; init; } = ResizeSize.Exact(256, 256);

    /// <summary>The Pillow filter used to resize images (default bicubic).</summary>
    public PillowResample Resample { get; init; } = PillowResample.Bicubic;

    /// <summary>
    /// The filter used to resize segmentation label maps. Defaults to <see cref="PillowResample.Nearest"/>, which keeps
    /// labels valid (transformers' fast processor does the same); <c>null</c> uses <see cref="Resample"/>, as the slow
    /// v4 processor did, which blends class ids at boundaries.
    /// </summary>
    public PillowResample? SegmentationResample { get; init; } = PillowResample.Nearest;

    /// <summary>Center-crop after resizing (default true).</summary>
    public bool DoCenterCrop { get; init; } = true;

    /// <summary>The crop size (default 224×224). Images smaller than it are zero-padded first, as Hugging Face does.</summary>
    public PixelSize CropSize { get; init; } = new(224, 224);

    /// <summary>Multiply by <see cref="RescaleFactor"/> (default true).</summary>
    public bool DoRescale { get; init; } = true;

    /// <summary>The rescale factor (default 1/255), applied in double precision before rounding to float32.</summary>
    public double RescaleFactor { get; init; } = 1.0 / 255;

    /// <summary>Normalize each channel as (x − mean) / std in float32 (default true).</summary>
    public bool DoNormalize { get; init; } = true;

    /// <summary>Per-channel means, R, G, B (default 0.5 each, Hugging Face's <c>IMAGENET_STANDARD_MEAN</c>).</summary>
    public IReadOnlyList<double> ImageMean { get; init; } = [0.5, 0.5, 0.5];

    /// <summary>Per-channel standard deviations, R, G, B (default 0.5 each).</summary>
    public IReadOnlyList<double> ImageStd { get; init; } = [0.5, 0.5, 0.5];

    /// <summary>
    /// For segmentation maps: map label 0 (background, "other") to 255 (ignore) and every other label v to v − 1,
    /// keeping 255 as 255 (ADE20K's classes 1..150 become 0..149, "other" becomes ignored). Default false.
    /// </summary>
    public bool DoReduceLabels { get; init; }

    /// <summary>The height and width of <c>pixel_values</c> for an input of <paramref name="input"/>.</summary>
    public PixelSize GetOutputSize(PixelSize input)
    {
        var size = DoResize ? Size.GetOutputSize(input) : input;
        return DoCenterCrop ? CropSize : size;
    }

    /// <summary>The output size when it does not depend on the input (center crop, or an exact resize), else <c>null</c>.</summary>
    public PixelSize? FixedOutputSize() =>
        DoCenterCrop ? CropSize : DoResize && Size.Height is { } h ? new PixelSize(h, Size.Width!.Value) : null;

    /// <summary>Preprocesses one image into a new CHW float32 array <c>[3, H, W]</c>.</summary>
    public float[] Preprocess(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var o = GetOutputSize(image.Size);
        var result = new float[3 * o.Height * o.Width];
        Preprocess(image.Pixels, image.Size, result);
        return result;
    }

    /// <summary>Preprocesses one image into <paramref name="destination"/>, which receives <c>[3, H, W]</c> (see <see cref="GetOutputSize"/>).</summary>
    public void Preprocess(RgbImage image, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        Preprocess(image.Pixels, image.Size, destination);
    }

    /// <summary>
    /// Preprocesses interleaved RGB pixels <c>[height, width, 3]</c> of an image of <paramref name="size"/> into
    /// <paramref name="destination"/> (<c>[3, H, W]</c>); the allocation-free entry point for per-row callers such as ML.NET transformers.
    /// </summary>
    public void Preprocess(ReadOnlySpan<byte> rgb, PixelSize size, Span<float> destination)
    {
        int width = size.Width, height = size.Height;
        if (width <= 0 || height <= 0) throw new ArgumentException($"Image dimensions must be positive, got {width}x{height}.");
        if (rgb.Length < (long)width * height * 3) throw new ArgumentException($"{rgb.Length} bytes cannot hold a {width}x{height} RGB image.", nameof(rgb));
        var lut = Lut();
        var resized = DoResize ? Size.GetOutputSize(size) : size;
        var plan = CropPlan.For(resized, DoCenterCrop ? CropSize : resized);
        int plane = plan.Out.Height * plan.Out.Width;
        if (destination.Length < 3 * plane)
            throw new ArgumentException($"The destination holds {destination.Length} floats; [3, {plan.Out.Height}, {plan.Out.Width}] needs {3 * plane}.", nameof(destination));

        if (DoResize && (resized.Width != width || resized.Height != height))
        {
            // Resize only the crop window: bit-identical to cropping the full resize, and cheaper.
            int length = plan.SrcWidth * plan.SrcHeight * 3;
            byte[] window = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                PillowResampler.ResizeRegion(rgb, width, height, 3, resized.Width, resized.Height, Resample,
                                             plan.SrcX, plan.SrcY, plan.SrcWidth, plan.SrcHeight, window);
                WriteChw(window.AsSpan(0, length), plan.SrcWidth * 3, plan, lut, destination);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(window);
            }
        }
        else
        {
            WriteChw(rgb[((plan.SrcY * width + plan.SrcX) * 3)..], width * 3, plan, lut, destination);
        }
    }

    /// <summary>
    /// Preprocesses a batch into a new <c>[N, 3, H, W]</c> array, images in parallel. All images must give the same
    /// output size (always true with center crop or an exact size).
    /// </summary>
    /// <param name="images">The images.</param>
    /// <param name="maxDegreeOfParallelism">Most images processed at once; −1 (default) uses every core, 1 runs sequentially.</param>
    public float[] PreprocessBatch(IReadOnlyList<RgbImage> images, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) return [];
        var o = GetOutputSize(images[0].Size);
        var result = new float[(long)images.Count * 3 * o.Height * o.Width];
        PreprocessBatch(images, result, maxDegreeOfParallelism);
        return result;
    }

    /// <summary>Preprocesses a batch into <paramref name="destination"/> (<c>[N, 3, H, W]</c>), images in parallel.</summary>
    public void PreprocessBatch(IReadOnlyList<RgbImage> images, Memory<float> destination, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) return;
        int per = CheckBatch(images.Count, i => GetOutputSize(images[i].Size), destination.Length);
        RunParallel(images.Count, maxDegreeOfParallelism, i => Preprocess(images[i], destination.Span.Slice(i * per, per)));
    }

    /// <summary>
    /// Decodes and preprocesses image files into a new <c>[N, 3, H, W]</c> array, files in parallel: the whole path
    /// from disk to model input. All images must give the same output size.
    /// </summary>
    /// <param name="paths">Image files.</param>
    /// <param name="decoderOptions">Decoder options (EXIF orientation, pixel limit); <c>null</c> for the defaults.</param>
    /// <param name="maxDegreeOfParallelism">Most files processed at once; −1 (default) uses every core.</param>
    public float[] PreprocessFiles(IReadOnlyList<string> paths, ImageDecoderOptions? decoderOptions = null, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0) return [];
        if (FixedOutputSize() is { } o)
        {
            int per = 3 * o.Height * o.Width;
            var result = new float[(long)paths.Count * per];
            RunParallel(paths.Count, maxDegreeOfParallelism,
                i => Preprocess(ImageDecoder.Decode(paths[i], decoderOptions), result.AsSpan(i * per, per)));
            return result;
        }
        // The output size depends on each image: decode first, then check and fill.
        var images = new RgbImage[paths.Count];
        RunParallel(paths.Count, maxDegreeOfParallelism, i => images[i] = ImageDecoder.Decode(paths[i], decoderOptions));
        return PreprocessBatch(images, maxDegreeOfParallelism);
    }

    /// <summary>
    /// Preprocesses a segmentation label map as the processor does for <c>segmentation_maps</c>: reduce labels (if
    /// <see cref="DoReduceLabels"/>), resize with <see cref="SegmentationResample"/> and center crop (padding with
    /// label 0); no rescale or normalize.
    /// </summary>
    public LabelMap PreprocessSegmentationMap(LabelMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        byte[] labels = map.Labels;
        if (DoReduceLabels)
        {
            labels = new byte[map.Labels.Length];
            for (int i = 0; i < labels.Length; i++)
            {
                byte v = map.Labels[i];
                labels[i] = v == 0 || v == 255 ? (byte)255 : (byte)(v - 1);
            }
        }
        var resized = DoResize ? Size.GetOutputSize(map.Size) : map.Size;
        var plan = CropPlan.For(resized, DoCenterCrop ? CropSize : resized);
        var window = new byte[plan.SrcWidth * plan.SrcHeight];
        PillowResampler.ResizeRegion(labels, map.Width, map.Height, 1, resized.Width, resized.Height,
                                     SegmentationResample ?? Resample, plan.SrcX, plan.SrcY, plan.SrcWidth, plan.SrcHeight, window);
        var result = new byte[plan.Out.Height * plan.Out.Width];
        for (int y = 0; y < plan.SrcHeight; y++)
            window.AsSpan(y * plan.SrcWidth, plan.SrcWidth).CopyTo(result.AsSpan((plan.DstY + y) * plan.Out.Width + plan.DstX));
        return new LabelMap(plan.Out, result);
    }

    /// <summary>
    /// Where the crop window falls: source window <c>[SrcX, SrcX+SrcWidth) × [SrcY, SrcY+SrcHeight)</c> of the resized
    /// image lands at <c>(DstX, DstY)</c> of the output; the rest of the output is zero padding. Mirrors
    /// <c>transformers.image_transforms.center_crop</c>: offset = floor((in − crop)/2), and when padding is needed the
    /// image is placed ceil((crop − in)/2) from the top/left.
    /// </summary>
    private readonly record struct CropPlan(PixelSize Out, int SrcX, int SrcY, int SrcWidth, int SrcHeight, int DstX, int DstY)
    {
        public static CropPlan For(PixelSize image, PixelSize crop)
        {
            var (sy, dy, h) = Axis(image.Height, crop.Height);
            var (sx, dx, w) = Axis(image.Width, crop.Width);
            return new CropPlan(crop, sx, sy, w, h, dx, dy);
        }

        private static (int Src, int Dst, int Length) Axis(int size, int crop)
        {
            if (size >= crop) return ((size - crop) / 2, 0, crop);
            return (0, (crop - size + 1) / 2, size);
        }
    }

    private static void WriteChw(ReadOnlySpan<byte> src, int srcStride, CropPlan plan, float[] lut, Span<float> destination)
    {
        int ow = plan.Out.Width, oh = plan.Out.Height, plane = ow * oh;
        var r = destination[..plane];
        var g = destination.Slice(plane, plane);
        var b = destination.Slice(2 * plane, plane);
        bool padded = plan.SrcWidth != ow || plan.SrcHeight != oh;
        if (padded)
        {
            r.Fill(lut[0]);
            g.Fill(lut[256]);
            b.Fill(lut[512]);
        }
        var lr = lut.AsSpan(0, 256);
        var lg = lut.AsSpan(256, 256);
        var lb = lut.AsSpan(512, 256);
        for (int y = 0; y < plan.SrcHeight; y++)
        {
            var row = src.Slice(y * srcStride, plan.SrcWidth * 3);
            int o = (plan.DstY + y) * ow + plan.DstX;
            for (int x = 0, s = 0; x < plan.SrcWidth; x++, s += 3, o++)
            {
                r[o] = lr[row[s]];
                g[o] = lg[row[s + 1]];
                b[o] = lb[row[s + 2]];
            }
        }
    }

    /// <summary>
    /// Rescale and normalize depend only on the uint8 value and the channel, so they are tabulated once: 3×256
    /// floats computed with exactly Hugging Face's arithmetic (float64 rescale cast to float32, then float32
    /// (x − mean) / std).
    /// </summary>
    private float[] Lut()
    {
        if (_lut != null) return _lut;
        if (ImageMean.Count != 3 || ImageStd.Count != 3)
            throw new InvalidOperationException($"image_mean and image_std need 3 values (RGB); got {ImageMean.Count} and {ImageStd.Count}.");
        if (DoCenterCrop && (CropSize.Height <= 0 || CropSize.Width <= 0))
            throw new InvalidOperationException($"crop_size must be positive, got {CropSize}.");
        var lut = new float[3 * 256];
        for (int c = 0; c < 3; c++)
        {
            float mean = (float)ImageMean[c], std = (float)ImageStd[c];
            for (int v = 0; v < 256; v++)
            {
                float x = DoRescale ? (float)(v * RescaleFactor) : v;
                if (DoNormalize) x = (x - mean) / std;
                lut[c * 256 + v] = x;
            }
        }
        return _lut = lut;
    }

    private int CheckBatch(int count, Func<int, PixelSize> sizeOf, long destinationLength)
    {
        var first = sizeOf(0);
        for (int i = 1; i < count; i++)
        {
            var s = sizeOf(i);
            if (s != first)
                throw new ArgumentException($"Batch images must give one output size; image 0 gives {first}, image {i} gives {s}. Enable center crop or use an exact size.");
        }
        int per = 3 * first.Height * first.Width;
        if (destinationLength < (long)count * per)
            throw new ArgumentException($"The destination holds {destinationLength} floats; [{count}, 3, {first.Height}, {first.Width}] needs {(long)count * per}.");
        return per;
    }

    private static void RunParallel(int count, int maxDegreeOfParallelism, Action<int> body)
    {
        if (maxDegreeOfParallelism == 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism }, body);
    }

    // ------------------------------------------------------------------ preprocessor_config.json

    /// <summary>
    /// Reads a checkpoint's <c>preprocessor_config.json</c>: <paramref name="path"/> is that file, the checkpoint
    /// folder holding it, or a Hugging Face model id (<see cref="Hub.BeitHub"/>). Understands <c>BeitImageProcessor</c>, <c>BeitImageProcessorFast</c> and the old
    /// <c>BeitFeatureExtractor</c> files (<c>size</c>/<c>crop_size</c> as a bare int, <c>reduce_labels</c>). Keys
    /// that are absent take this class's defaults.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file, or the folder has no <c>preprocessor_config.json</c>.</exception>
    /// <exception cref="InvalidDataException">The JSON is invalid or a value is out of range; the message names the file.</exception>
    public static BeitImageProcessor FromPretrained(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        path = Hub.BeitHub.LocalPath(path, Hub.BeitHubFiles.Configuration | Hub.BeitHubFiles.Preprocessor);
        string file = Directory.Exists(path) ? Path.Combine(path, ConfigFileName) : path;
        if (!File.Exists(file))
            throw new FileNotFoundException(Directory.Exists(path)
                ? $"The checkpoint folder '{path}' has no {ConfigFileName}."
                : $"The preprocessor config '{path}' does not exist.", file);
        return FromJsonObject(UntrustedJson.ReadObjectFile(file, BeitLimits.MaxPreprocessorConfigFileBytes), file);
    }

    /// <summary>Parses the JSON of a <c>preprocessor_config.json</c>; <paramref name="sourceName"/> names it in errors.</summary>
    public static BeitImageProcessor FromJson(string json, string sourceName = "<json>")
    {
        ArgumentNullException.ThrowIfNull(json);
        return FromJsonObject(UntrustedJson.ParseObject(json, sourceName), sourceName);
    }

    private static BeitImageProcessor FromJsonObject(JsonObject root, string sourceName)
    {
        // A key that is absent or JSON null takes the default, as Python's None does in transformers' processors.
        T Field<T>(string key, Func<JsonNode, T> parse, T fallback)
        {
            if (root[key] is not { } node) return fallback;
            try
            {
                return parse(node);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or InvalidDataException)
            {
                throw new InvalidDataException($"'{sourceName}': field '{key}': {e.Message}", e);
            }
        }
        var d = new BeitImageProcessor();
        return new BeitImageProcessor
        {
            DoResize = Field("do_resize", UntrustedJson.Bool, d.DoResize),
            Size = Field("size", ParseResizeSize, d.Size),
            Resample = Field("resample", ParseResample, d.Resample),
            DoCenterCrop = Field("do_center_crop", UntrustedJson.Bool, d.DoCenterCrop),
            CropSize = Field("crop_size", ParseCropSize, d.CropSize),
            DoRescale = Field("do_rescale", UntrustedJson.Bool, d.DoRescale),
            RescaleFactor = Field("rescale_factor", UntrustedJson.Double, d.RescaleFactor),
            DoNormalize = Field("do_normalize", UntrustedJson.Bool, d.DoNormalize),
            ImageMean = Field<IReadOnlyList<double>>("image_mean", m => ParseChannels(m, "image_mean"), d.ImageMean),
            ImageStd = Field<IReadOnlyList<double>>("image_std", s => ParseChannels(s, "image_std"), d.ImageStd),
            // Old configs say reduce_labels; transformers renamed it do_reduce_labels.
            DoReduceLabels = Field("do_reduce_labels", UntrustedJson.Bool, Field("reduce_labels", UntrustedJson.Bool, d.DoReduceLabels)),
        };
    }

    /// <summary>This processor as a Hugging Face <c>preprocessor_config.json</c> (<c>image_processor_type</c> <c>BeitImageProcessor</c>).</summary>
    public string ToJson()
    {
        var size = new JsonObject();
        if (Size.Height is { } h)
        {
            size["height"] = h;
            size["width"] = Size.Width;
        }
        else
        {
            size["shortest_edge"] = Size.ShortestEdge;
            if (Size.LongestEdge is { } l) size["longest_edge"] = l;
        }
        var o = new JsonObject
        {
            ["crop_size"] = new JsonObject { ["height"] = CropSize.Height, ["width"] = CropSize.Width },
            ["do_center_crop"] = DoCenterCrop,
            ["do_normalize"] = DoNormalize,
            ["do_reduce_labels"] = DoReduceLabels,
            ["do_rescale"] = DoRescale,
            ["do_resize"] = DoResize,
            ["image_mean"] = new JsonArray(ImageMean.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            ["image_processor_type"] = "BeitImageProcessor",
            ["image_std"] = new JsonArray(ImageStd.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            ["resample"] = (int)Resample,
            ["rescale_factor"] = RescaleFactor,
            ["size"] = size,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    // Sizes are bounded before anything is allocated from them (BeitLimits.MaxImageSide).
    private static int Side(JsonNode? node) => UntrustedJson.Int(node, 1, BeitLimits.MaxImageSide);

    private static ResizeSize ParseResizeSize(JsonNode node)
    {
        switch (node)
        {
            case JsonValue v:
                int s = Side(v);
                return ResizeSize.Exact(s, s);
            case JsonArray a when a.Count == 2:
                return ResizeSize.Exact(Side(a[0]), Side(a[1]));
            case JsonObject o:
                if (o["height"] is { } h && o["width"] is { } w) return ResizeSize.Exact(Side(h), Side(w));
                if (o["shortest_edge"] is { } se) return ResizeSize.Shortest(Side(se), o["longest_edge"] is { } le ? Side(le) : null);
                throw new InvalidDataException($"size {o.ToJsonString()} needs height and width, or shortest_edge.");
            default:
                throw new InvalidDataException($"size {node.ToJsonString()} is not an int, [height, width] or an object.");
        }
    }

    private static PixelSize ParseCropSize(JsonNode node)
    {
        var (h, w) = node switch
        {
            JsonValue v => (Side(v), Side(v)),
            JsonArray { Count: 2 } a => (Side(a[0]), Side(a[1])),
            JsonObject o when o["height"] is { } hh && o["width"] is { } ww => (Side(hh), Side(ww)),
            _ => throw new InvalidDataException($"crop_size {node.ToJsonString()} needs height and width."),
        };
        if (h <= 0 || w <= 0) throw new InvalidDataException($"crop_size must be positive, got {h}x{w}.");
        return new PixelSize(h, w);
    }

    private static PillowResample ParseResample(JsonNode node)
    {
        if (node is JsonValue v && v.TryGetValue<string>(out var name))
        {
            if (Enum.TryParse<PillowResample>(name, ignoreCase: true, out var named)) return named;
            if (int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n2)) return CheckResample(n2);
            throw new InvalidDataException($"resample '{name}' is not a Pillow filter.");
        }
        return CheckResample(UntrustedJson.Int(node));
    }

    private static PillowResample CheckResample(int n) =>
        Enum.IsDefined((PillowResample)n) ? (PillowResample)n : throw new InvalidDataException($"resample {n} is not a Pillow filter (0..5).");

    private static double[] ParseChannels(JsonNode node, string key)
    {
        if (node is JsonArray { Count: > 3 } many) throw new InvalidDataException($"{key} has {many.Count} values; RGB needs 3.");
        double[] values = node is JsonArray a ? a.Select(UntrustedJson.Double).ToArray() : [UntrustedJson.Double(node)];
        if (values.Length == 1) values = [values[0], values[0], values[0]];
        if (values.Length != 3) throw new InvalidDataException($"{key} has {values.Length} values; RGB needs 3.");
        return values;
    }
}
