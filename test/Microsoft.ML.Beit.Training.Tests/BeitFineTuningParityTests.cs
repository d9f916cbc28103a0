using Microsoft.ML.Beit.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Beit.Tests;

/// <summary>
/// Fine-tuning parity (<c>test/fixtures/hf-beit/train/cls_relpos_adamw</c>): from <c>tiny/cls_relpos</c>, 5 steps of
/// <c>AdamW(all parameters, lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.05)</c> in train() mode with
/// cross-entropy reproduce transformers + PyTorch: losses and first-step gradients within 1e-4, final eval logits within 1e-3.
/// </summary>
public class BeitFineTuningParityTests(ITestOutputHelper output)
{
    [Fact]
    public void FiveAdamWStepsReproduceHuggingFace()
    {
        var io = ParityAssert.Io(Fixtures.Train("cls_relpos_adamw"));
        var check = new ParityAssert(output, "cls_relpos_adamw");
        using var model = BeitForImageClassification.FromPretrained(Fixtures.Tiny("cls_relpos"));
        var parameters = model.named_parameters().ToList();
        Assert.Equal(model.state_dict().Count, parameters.Count); // every checkpoint tensor is a trained parameter
        using var optimizer = optim.AdamW(parameters.Select(p => p.parameter), lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05);
        using var pixels = ParityAssert.Input(io["pixel_values"]);
        using var labels = ParityAssert.Input(io["labels"]);

        model.train();
        var losses = new float[5];
        for (int step = 0; step < 5; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.forward(pixels).Logits, labels);
            loss.backward();
            losses[step] = loss.item<float>();
            if (step == 0)
            {
                var grads = parameters.ToDictionary(p => p.name, p => p.parameter.grad!);
                check.Close("grad0.beit.embeddings.patch_embeddings.projection.weight", grads["beit.embeddings.patch_embeddings.projection.weight"], io["grad0.beit.embeddings.patch_embeddings.projection.weight"]);
                check.Close("grad0.classifier.weight", grads["classifier.weight"], io["grad0.classifier.weight"]);
            }
            optimizer.step();
        }
        using (var lossTensor = tensor(losses)) check.Close("losses", lossTensor, io["losses"]);

        model.eval();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            check.Close("logits_after", model.forward(pixels).Logits, io["logits_after"], tolerance: 1e-3);
        }
    }
}
