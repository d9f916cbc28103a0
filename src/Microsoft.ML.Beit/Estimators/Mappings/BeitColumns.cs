using System.Reflection;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// Fixed internal column names. A saved <c>CustomMapping</c> reads and writes columns named after its classes'
/// properties (schema definitions are not persisted), so each stage copies the user's columns to these names, runs its
/// mappings, copies the results to the user's names and drops these again. Never rename them: saved models use them.
/// </summary>
/// <remarks>
/// This is the one table of internal columns: each constant carries its shape, and <see cref="Table"/>,
/// <see cref="All"/> and <see cref="SchemaShapeShim"/> are derived from it, so adding a column is one line here.
/// (The names must stay constants: the mappings' <c>[ColumnName]</c> attributes use them.)
/// </remarks>
internal static class BeitColumns
{
    [BeitColumn(BeitColumnShape.Single)] public const string Row = "__beit_row";
    [BeitColumn(BeitColumnShape.Text)] public const string Config = "__beit_config";
    // The user's input column copied as is: its type is the user's (paths, bytes or pixel values).
    [BeitColumn(BeitColumnShape.Singles)] public const string Input = "__beit_input";
    [BeitColumn(BeitColumnShape.Bytes)] public const string Image = "__beit_image";
    [BeitColumn(BeitColumnShape.Bytes)] public const string DecodedImage = "__beit_decoded_image";
    [BeitColumn(BeitColumnShape.Singles)] public const string Pixels = "__beit_pixels";
    /// <summary>The input of every ONNX graph the stages run (a flattened <c>pixel_values</c>).</summary>
    [BeitColumn(BeitColumnShape.Singles)] public const string PixelValues = "__beit_pixel_values";
    [BeitColumn(BeitColumnShape.KnownSizeSingles)] public const string Probabilities = "__beit_probabilities";
    [BeitColumn(BeitColumnShape.KnownSizeSingles)] public const string Logits = "__beit_logits";
    [BeitColumn(BeitColumnShape.KnownSizeSingles)] public const string Pooled = "__beit_pooled";
    [BeitColumn(BeitColumnShape.KnownSizeSingles)] public const string ClsToken = "__beit_cls_token";
    [BeitColumn(BeitColumnShape.KnownSizeSingles)] public const string PatchTokens = "__beit_patch_tokens";
    [BeitColumn(BeitColumnShape.KnownSizeSingles)] public const string SegmentationScores = "__beit_segmentation_scores";
    [BeitColumn(BeitColumnShape.Text)] public const string PredictedName = "__beit_predicted_name";
    [BeitColumn(BeitColumnShape.Int32s)] public const string LabelMap = "__beit_label_map";
    [BeitColumn(BeitColumnShape.Size)] public const string LabelMapSize = "__beit_label_map_size";
    /// <summary>LoadBeitImages with an error column: why the row's image could not be loaded ("" when it could).</summary>
    [BeitColumn(BeitColumnShape.Text)] public const string Error = "__beit_error";

    /// <summary>Every internal column with its shape, in declaration order.</summary>
    public static readonly IReadOnlyList<(string Name, BeitColumnShape Shape)> Table =
        typeof(BeitColumns).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.GetCustomAttribute<BeitColumnAttribute>() != null)
            .OrderBy(f => f.MetadataToken)
            .Select(f => ((string)f.GetRawConstantValue()!, f.GetCustomAttribute<BeitColumnAttribute>()!.Shape))
            .ToArray();

    /// <summary>Every internal name, for the final <c>DropColumns</c> of a stage.</summary>
    public static readonly string[] All = Table.Select(c => c.Name).ToArray();

    /// <summary>The ML.NET type a shape stands for when a stage's output schema is propagated.</summary>
    public static DataViewType TypeOf(BeitColumnShape shape) => shape switch
    {
        BeitColumnShape.Single => NumberDataViewType.Single,
        BeitColumnShape.Text => TextDataViewType.Instance,
        BeitColumnShape.Singles => new VectorDataViewType(NumberDataViewType.Single),
        // The ONNX outputs have a known size; 1 stands for it (the shape only needs "fixed-size vector").
        BeitColumnShape.KnownSizeSingles => new VectorDataViewType(NumberDataViewType.Single, 1),
        BeitColumnShape.Bytes => new VectorDataViewType(NumberDataViewType.Byte),
        BeitColumnShape.Int32s => new VectorDataViewType(NumberDataViewType.Int32),
        BeitColumnShape.Size => new VectorDataViewType(NumberDataViewType.Int32, 2),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, null),
    };
}

/// <summary>The kind of an internal column (see <see cref="BeitColumns"/>).</summary>
internal enum BeitColumnShape
{
    /// <summary>A float.</summary>
    Single,
    /// <summary>Text.</summary>
    Text,
    /// <summary>A variable-size float vector.</summary>
    Singles,
    /// <summary>A float vector whose size the ONNX graph fixes.</summary>
    KnownSizeSingles,
    /// <summary>A variable-size byte vector.</summary>
    Bytes,
    /// <summary>A variable-size Int32 vector.</summary>
    Int32s,
    /// <summary>A <c>[height, width]</c> pair of Int32.</summary>
    Size,
}

/// <summary>Marks a <see cref="BeitColumns"/> name with its shape.</summary>
[AttributeUsage(AttributeTargets.Field)]
internal sealed class BeitColumnAttribute(BeitColumnShape shape) : Attribute
{
    public BeitColumnShape Shape { get; } = shape;
}
