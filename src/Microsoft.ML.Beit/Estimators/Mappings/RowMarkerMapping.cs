using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// Adds a constant scalar column to any row. The built-in <c>Expression</c> transform that carries a stage's
/// configuration needs a <i>scalar</i> input (a vector input would repeat the text once per slot), and a stage's own
/// inputs are vectors, so each stage starts with this marker.
/// </summary>
[CustomMappingFactoryAttribute(Contract)]
internal sealed class RowMarkerMapping : CustomMappingFactory<RowMarkerMapping.Input, RowMarkerMapping.Output>
{
    public const string Contract = "Beit.RowMarker.v1";

    /// <summary>Reads nothing.</summary>
    public sealed class Input
    {
    }

    public sealed class Output
    {
        [ColumnName(BeitColumns.Row)]
        public float Row { get; set; }
    }

    public override Action<Input, Output> GetMapping() => static (_, _) => { };
}
