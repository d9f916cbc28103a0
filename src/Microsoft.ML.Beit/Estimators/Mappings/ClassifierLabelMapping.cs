using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// The predicted class name (arg-max of the probabilities, first maximum wins as in <c>torch.argmax</c>); a built-in
/// <c>MapValueToKey</c> then turns it into the <c>PredictedLabel</c> key whose values are the label names.
/// </summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class ClassifierLabelMapping : CustomMappingFactory<ClassifierLabelMapping.Input, ClassifierLabelMapping.Output>
{
    public const string Contract = "Beit.ClassifierLabel.v1";

    public sealed class Input
    {
        [ColumnName(BeitColumns.Config)]
        public string Config { get; set; } = "";

        [ColumnName(BeitColumns.Probabilities)]
        public float[] Probabilities { get; set; } = [];
    }

    public sealed class Output
    {
        [ColumnName(BeitColumns.PredictedName)]
        public string PredictedName { get; set; } = "";
    }

    public override Action<Input, Output> GetMapping() => static (src, dst) =>
    {
        var config = BeitStageConfig.Get(src.Config);
        var labels = config.Labels ?? [];
        var p = src.Probabilities ?? [];
        if (p.Length != labels.Length)
            throw new InvalidDataException($"The classifier produced {p.Length} probabilities for {labels.Length} labels.");
        // NaN probabilities come from a missing image (see BeitImageColumn): no name, so MapValueToKey gives the key's missing value 0.
        dst.PredictedName = p.Length > 0 && float.IsNaN(p[0]) ? "" : labels[ArgMax(p)];
    };

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length && !float.IsNaN(values[best]); i++)
            if (values[i] > values[best] || float.IsNaN(values[i])) best = i;
        return best;
    }
}
