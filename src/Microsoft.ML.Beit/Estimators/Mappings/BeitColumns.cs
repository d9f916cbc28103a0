namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// Fixed internal column names. A saved <c>CustomMapping</c> reads and writes columns named after its classes'
/// properties (schema definitions are not persisted), so each stage copies the user's columns to these names, runs its
/// mappings, copies the results to the user's names and drops these again. Never rename them: saved models use them.
/// </summary>
internal static class BeitColumns
{
    public const string Row = "__beit_row";
    public const string Config = "__beit_config";
    public const string Input = "__beit_input";
    public const string Image = "__beit_image";
    public const string DecodedImage = "__beit_decoded_image";
    public const string Pixels = "__beit_pixels";
    /// <summary>The input of every ONNX graph the stages run (a flattened <c>pixel_values</c>).</summary>
    public const string PixelValues = "__beit_pixel_values";
    public const string Probabilities = "__beit_probabilities";
    public const string Logits = "__beit_logits";
    public const string Pooled = "__beit_pooled";
    public const string ClsToken = "__beit_cls_token";
    public const string PatchTokens = "__beit_patch_tokens";
    public const string SegmentationScores = "__beit_segmentation_scores";
    public const string PredictedName = "__beit_predicted_name";
    public const string LabelMap = "__beit_label_map";
    public const string LabelMapSize = "__beit_label_map_size";
    /// <summary>LoadBeitImages with an error column: why the row's image could not be loaded ("" when it could).</summary>
    public const string Error = "__beit_error";

    /// <summary>Every internal name, for the final <c>DropColumns</c> of a stage.</summary>
    public static readonly string[] All =
    [
        Row, Config, Input, Image, DecodedImage, Pixels, PixelValues, Probabilities, Logits, Pooled, ClsToken, PatchTokens,
        SegmentationScores, PredictedName, LabelMap, LabelMapSize, Error,
    ];
}
