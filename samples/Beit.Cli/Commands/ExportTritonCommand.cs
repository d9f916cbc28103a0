using System.CommandLine;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit export-triton &lt;model&gt; &lt;repo-folder&gt; [--name N] [--max-batch-size B]</c>: a Triton Inference Server
/// model repository entry (config.pbtxt, 1/model.onnx, labels.txt) through <see cref="BeitTritonExport"/>.
/// </summary>
internal static class ExportTritonCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model.zip made by 'beit package', a Hugging Face checkpoint folder, or a Hub model id (org/name[@revision])." };
        var repository = new Argument<string>("repo-folder") { Description = "The Triton model repository; the model's folder is written (atomically) inside it." };
        var name = new Option<string?>("--name") { Description = "The model's name in the repository (default: the model file's or folder's name)." };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Triton's max_batch_size for dynamic batching (default 8).", DefaultValueFactory = _ => 8 };
        var cmd = new Command("export-triton", "Write a Triton Inference Server model repository entry (onnxruntime_onnx, dynamic batching).") { model, repository, name, maxBatch };
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(maxBatch) is < 1 or > 4096)
            {
                Console.Error.WriteLine("beit export-triton: --max-batch-size must be 1 to 4096.");
                return 2;
            }
            string folder = BeitTritonExport.Write(HubModels.Local(pr.GetValue(model)!), pr.GetValue(repository)!,
                new BeitTritonExportOptions { Name = pr.GetValue(name), MaxBatchSize = pr.GetValue(maxBatch) });
            Console.WriteLine($"Wrote {folder} (config.pbtxt, 1/model.onnx, {BeitTritonExport.LabelsFileName})");
            return 0;
        });
        return cmd;
    }
}
