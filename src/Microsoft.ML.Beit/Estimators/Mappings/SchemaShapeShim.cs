using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// Stands in for a stage's work when propagating a <c>SchemaShape</c>: ML.NET offers no public way to build schema
/// shape columns, so <c>GetOutputSchema</c> runs built-in estimators over this mapping, which "adds" every internal
/// column with the right kind (fixed- or variable-size vector, item type). It is never fitted or saved.
/// </summary>
internal sealed class SchemaShapeShim
{
    public sealed class Input
    {
    }

    public sealed class Output
    {
        [ColumnName(BeitColumns.Row)] public float Row { get; set; }
        [ColumnName(BeitColumns.Config)] public string Config { get; set; } = "";
        [ColumnName(BeitColumns.Input)] public float[] Input { get; set; } = [];
        [ColumnName(BeitColumns.Image)] public byte[] Image { get; set; } = [];
        [ColumnName(BeitColumns.DecodedImage)] public byte[] DecodedImage { get; set; } = [];
        [ColumnName(BeitColumns.Pixels)] public float[] Pixels { get; set; } = [];
        [ColumnName(BeitColumns.PixelValues)] public float[] PixelValues { get; set; } = [];
        [ColumnName(BeitColumns.Probabilities), VectorType(1)] public float[] Probabilities { get; set; } = [];
        [ColumnName(BeitColumns.Logits), VectorType(1)] public float[] Logits { get; set; } = [];
        [ColumnName(BeitColumns.Pooled), VectorType(1)] public float[] Pooled { get; set; } = [];
        [ColumnName(BeitColumns.ClsToken), VectorType(1)] public float[] ClsToken { get; set; } = [];
        [ColumnName(BeitColumns.PatchTokens), VectorType(1)] public float[] PatchTokens { get; set; } = [];
        [ColumnName(BeitColumns.SegmentationScores), VectorType(1)] public float[] SegmentationScores { get; set; } = [];
        [ColumnName(BeitColumns.PredictedName)] public string PredictedName { get; set; } = "";
        [ColumnName(BeitColumns.LabelMap)] public int[] LabelMap { get; set; } = [];
        [ColumnName(BeitColumns.LabelMapSize), VectorType(2)] public int[] LabelMapSize { get; set; } = [];
        [ColumnName(BeitColumns.Error)] public string Error { get; set; } = "";
    }

    /// <summary>
    /// The output shape of a stage: <paramref name="inputSchema"/> plus the internal columns, then
    /// <paramref name="keyMapping"/>, the copies to the user's names and the drop of every internal column.
    /// </summary>
    public static SchemaShape OutputShape(TransformsCatalog catalog, SchemaShape inputSchema,
        (string UserColumn, string InternalName)[] outputs, IEstimator<ITransformer>? keyMapping = null)
    {
        IEstimator<ITransformer> chain = catalog.CustomMapping<Input, Output>(static (_, _) => { }, contractName: null);
        if (keyMapping != null) chain = chain.Append(keyMapping);
        foreach (var (user, name) in outputs) chain = chain.Append(catalog.CopyColumns(user, name));
        return chain.Append(catalog.DropColumns(BeitColumns.All)).GetOutputSchema(inputSchema);
    }
}
