using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary><c>BeitImageProcessor</c>: a decoded image → <c>pixel_values</c> <c>[3, H, W]</c>, Pillow-exact.</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class ProcessImageMapping : CustomMappingFactory<ProcessImageMapping.Input, ProcessImageMapping.Output>
{
    public const string Contract = "Beit.ProcessImages.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Image)]
        public byte[] Image { get; set; } = [];
    }

    public sealed class Output
    {
        [ColumnName(BeitColumns.Pixels)]
        public float[] Pixels { get; set; } = [];
    }

    public override Action<Input, Output> GetMapping() => static (src, dst) =>
    {
        var config = BeitStageConfig.Get(src.Config);
        if (BeitImageColumn.IsMissing(src.Image ?? []))
        {
            // A row LoadBeitImages could not load (its error column says why): carried on as one NaN, not decoded.
            if (dst.Pixels.Length != 1) dst.Pixels = new float[1];
            dst.Pixels[0] = float.NaN;
            return;
        }
        if (!BeitImageColumn.TryRead(src.Image ?? [], out int width, out int height, out var pixels, out string? problem))
            throw new BeitInputException(config.Column, null, null, problem!);
        var processor = config.GetProcessor();
        var input = new PixelSize(height, width);
        var size = processor.GetOutputSize(input);
        int length = 3 * size.Height * size.Width;
        // The destination object lives as long as the cursor: reuse its buffer (a fresh 600 KB array per row would churn the large-object heap).
        if (dst.Pixels.Length != length) dst.Pixels = new float[length];
        processor.Preprocess(pixels, input, dst.Pixels);
    };
}
