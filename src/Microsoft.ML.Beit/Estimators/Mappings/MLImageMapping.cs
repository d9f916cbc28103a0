using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// <c>BeitImageProcessor</c> over an ML.NET <see cref="MLImage"/> column (from <c>mlContext.Transforms.LoadImages</c>):
/// the image's BGRA/RGBA pixels → a decoded-image value (see <see cref="BeitImageColumn"/>), the alpha byte dropped.
/// </summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class MLImageMapping : CustomMappingFactory<MLImageMapping.Input, MLImageMapping.Output>
{
    public const string Contract = "Beit.MLImageToRgb.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Input), AnySizeImageType]
        public MLImage? Image { get; set; }
    }

    public sealed class Output
    {
        [ColumnName(BeitColumns.Image)]
        public byte[] Image { get; set; } = [];
    }

    public override Action<Input, Output> GetMapping() => static (src, dst) =>
    {
        // LoadImages gives no image for an empty path: carry it on as the missing image (NaN pixel values downstream).
        if (src.Image == null)
        {
            dst.Image = BeitImageColumn.MissingValue();
            return;
        }
        RgbImage rgb;
        try
        {
            rgb = ImageDecoder.Decode(src.Image);
        }
        catch (ArgumentException e)
        {
            throw new BeitInputException(BeitStageConfig.Get(src.Config).Column, null, null, e.Message, e);
        }
        dst.Image = ImageLoading.Write(dst.Image, rgb);
    };
}

/// <summary>
/// Marks an <see cref="MLImage"/> member as an image of any size, the type <c>LoadImages</c> outputs. ML.NET's own
/// <see cref="ImageTypeAttribute"/> cannot: its parameterless form still builds <c>ImageDataViewType(0, 0)</c> through
/// the checked constructor, which throws.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class AnySizeImageTypeAttribute : DataViewTypeAttribute
{
    public override bool Equals(DataViewTypeAttribute other) => other is AnySizeImageTypeAttribute;

    public override bool Equals(object? obj) => obj is AnySizeImageTypeAttribute;

    public override int GetHashCode() => nameof(AnySizeImageTypeAttribute).GetHashCode(StringComparison.Ordinal);

    public override void Register() => DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage), this);
}
