using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// Guards a model stage's ONNX input: the pixel vector must hold exactly <c>[C, H, W]</c> values. The graph takes a
/// flattened input (ML.NET can only feed variable-size vectors that way) and reshapes it, so without this check a
/// wrong-sized row would fail deep inside ONNX Runtime, or, when it happens to divide evenly, silently become a batch.
/// </summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class CheckPixelsMapping : CustomMappingFactory<CheckPixelsMapping.Input, CheckPixelsMapping.Output>
{
    public const string Contract = "Beit.CheckPixels.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Input)]
        public float[] Pixels { get; set; } = [];
    }

    public sealed class Output
    {
        [ColumnName(BeitColumns.PixelValues)]
        public float[] PixelValues { get; set; } = [];
    }

    public override Action<Input, Output> GetMapping() => static (src, dst) =>
    {
        var config = BeitStageConfig.Get(src.Config);
        var pixels = src.Pixels ?? [];
        if (BeitImageColumn.IsMissingPixels(pixels) && config.InputLength != 1)
        {
            // A missing image: ApplyOnnxModel scores every row, so the row goes through as NaN and comes out as NaN
            // scores (the cost of one ordinary row; the image was never decoded).
            if (dst.PixelValues.Length != config.InputLength) dst.PixelValues = new float[config.InputLength];
            dst.PixelValues.AsSpan().Fill(float.NaN);
            return;
        }
        if (pixels.Length != config.InputLength)
            throw new BeitInputException(config.Column, null, null, WrongSize(config, pixels.Length));
        dst.PixelValues = pixels;
    };

    public static string WrongSize(BeitStageConfig config, int length) =>
        $"the row holds {length} pixel values, but the model takes [{config.Channels}, {config.Height}, {config.Width}] = {config.InputLength} " +
        $"(configure BeitImageProcessor to produce {config.Height}x{config.Width} images, e.g. from the checkpoint's preprocessor_config.json).";
}
