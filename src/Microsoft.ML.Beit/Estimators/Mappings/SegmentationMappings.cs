using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>A per-pixel class map, row-major, with its <c>[height, width]</c>.</summary>
internal sealed class LabelMapOutput
{
    [ColumnName(BeitColumns.LabelMap)]
    public int[] Labels { get; set; } = [];

    [ColumnName(BeitColumns.LabelMapSize), VectorType(2)]
    public int[] Size { get; set; } = [0, 0];

    /// <summary><c>post_process_semantic_segmentation</c> of one image's logits <c>[C, h, w]</c> at <paramref name="height"/>×<paramref name="width"/>.</summary>
    public void Set(BeitStageConfig config, float[] logits, int height, int width)
    {
        int c = config.Labels?.Length ?? 0, h = config.LogitsHeight, w = config.LogitsWidth;
        if (logits.Length != (long)c * h * w)
            throw new InvalidDataException($"The segmenter produced {logits.Length} logits; [{c}, {h}, {w}] was expected.");
        if (logits.Length > 0 && float.IsNaN(logits[0]))
        {
            SetMissing();
            return;
        }
        Labels = SemanticSegmentationPostProcessor.Process(logits, 1, c, h, w, [(height, width)])[0];
        Size = [height, width];
    }

    /// <summary>A missing image (see <see cref="BeitImageColumn"/>): an empty map of size 0×0.</summary>
    public void SetMissing()
    {
        Labels = [];
        Size = [0, 0];
    }
}

/// <summary>The segmenter's label map at each row's original image size (read from the decoded-image column).</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class SegmentationMapMapping : CustomMappingFactory<SegmentationMapMapping.Input, LabelMapOutput>
{
    public const string Contract = "Beit.SegmentationMap.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Logits)]
        public float[] Logits { get; set; } = [];

        [ColumnName(BeitColumns.Image)]
        public byte[] Image { get; set; } = [];
    }

    public override Action<Input, LabelMapOutput> GetMapping() => static (src, dst) =>
    {
        var config = BeitStageConfig.Get(src.Config);
        if (BeitImageColumn.IsMissing(src.Image ?? []))
        {
            dst.SetMissing();
            return;
        }
        if (!BeitImageColumn.TryRead(src.Image ?? [], out int width, out int height, out _, out string? problem))
            throw new BeitInputException(config.ImageColumn ?? "", null, null, problem!);
        dst.Set(config, src.Logits ?? [], height, width);
    };
}

/// <summary>The segmenter's label map at the model's input size (no image column).</summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class SegmentationMapAtInputSizeMapping : CustomMappingFactory<SegmentationMapAtInputSizeMapping.Input, LabelMapOutput>
{
    public const string Contract = "Beit.SegmentationMapAtInputSize.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Logits)]
        public float[] Logits { get; set; } = [];
    }

    public override Action<Input, LabelMapOutput> GetMapping() => static (src, dst) =>
    {
        var config = BeitStageConfig.Get(src.Config);
        dst.Set(config, src.Logits ?? [], config.Height, config.Width);
    };
}
