using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Training.Pretraining;

public sealed partial class BeitMaskedImageModelingTrainer : IEstimator<BeitFeaturizerTransformer>
{
    private MLContext Context => TrainingChannel.Require(_mlContext, "MaskedImageModeling");

    /// <summary>The result of the last <see cref="Fit(IDataView)"/>: the TorchSharp model, its tokenizer and the per-epoch history.</summary>
    public Result? LastResult { get; private set; }

    /// <summary>
    /// Pre-trains on every row of <paramref name="input"/> (<see cref="Options.FeatureColumnName"/>: pixel values from
    /// <c>BeitImageProcessor</c>; other columns are ignored) and returns the <see cref="BeitFeaturizerTransformer"/> of
    /// the pre-trained backbone (pooled embeddings in <see cref="Options.OutputColumnName"/>). Save the checkpoint for
    /// fine-tuning with <see cref="Save"/> on <see cref="LastResult"/>.
    /// </summary>
    public BeitFeaturizerTransformer Fit(IDataView input)
    {
        var o = _options;
        var ml = Context;
        const string trainer = nameof(BeitMaskedImageModelingTrainer);
        var column = PixelColumn.Find(input.Schema, o.FeatureColumnName, trainer);
        var (pixels, side, rows) = PixelColumn.Read(input, column, [], _ => _ => { }, o.ImageSize, trainer);
        var images = BeitTrainingImages.FromNormalizedPixels(pixels, new int[rows], side, side, ["image"]);
        var result = Train(images);
        LastResult = result;
        var model = result.Model;
        var estimator = ml.Transforms.BeitFeaturizer(new BeitFeaturizerEstimator.Options
        {
            Model = BeitModelSource.FromTensors(model.Config, model.ToTensorData(), "pre-trained BEiT"),
            InputColumnName = o.FeatureColumnName,
            OutputColumnName = o.OutputColumnName,
        });
        return estimator.Fit(ml.Data.LoadFromEnumerable(Array.Empty<PixelRow>(), PixelRow.SchemaFor(o.FeatureColumnName)));
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = _options;
        var ml = Context;
        PixelColumn.CheckShape(inputSchema, o.FeatureColumnName, nameof(BeitMaskedImageModelingTrainer));
        // The shape of what Fit returns: a float vector of embeddings added to the input columns.
        var shape = ml.Transforms.CustomMapping<EmptyRow, FeaturesRow>(static (_, _) => { }, contractName: null)
            .Append(ml.Transforms.CopyColumns(o.OutputColumnName, nameof(FeaturesRow.BeitFeatures)))
            .Append(ml.Transforms.DropColumns(nameof(FeaturesRow.BeitFeatures)));
        return shape.GetOutputSchema(inputSchema);
    }

    private sealed class EmptyRow
    {
    }

    private sealed class FeaturesRow
    {
        public float[] BeitFeatures { get; set; } = [];
    }
}
