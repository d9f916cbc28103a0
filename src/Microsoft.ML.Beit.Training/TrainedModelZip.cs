using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Onnx;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// The one save convention of the fine-tuning trainers: a trained TorchSharp model becomes the standard scoring
/// pipeline of its task (<c>ImagePath</c> → <c>LoadBeitImages</c> → <c>BeitImageProcessor</c> for the model's
/// configuration → the ONNX model stage), saved atomically to <c>model.zip</c> by <see cref="BeitPipelines.Package"/>
/// with the user's <see cref="MLContext"/>.
/// </summary>
internal static class TrainedModelZip
{
    public static void Save(MLContext mlContext, BeitPreTrainedModel model, BeitOnnxTask task, string modelPath, BeitOnnxPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        BeitPipelines.Package(mlContext, BeitModelSource.FromTensors(model.Config, model.ToTensorData(), $"trained {model.GetType().Name}"), task, modelPath,
            new BeitPipelines.Options { InputColumnName = BeitPipelines.ImagePathColumn, ExportOptions = new BeitOnnxExportOptions { Precision = precision } });
    }
}
