using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Hugging Face's <c>ACT2FN</c> for the activations <see cref="BeitConfig"/> accepts.</summary>
internal static class BeitActivation
{
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "quick_gelu" => x => x * sigmoid(x * 1.702),
        "silu" or "swish" => x => nn.functional.silu(x),
        _ => throw new ArgumentException($"hidden_act '{name}' is not supported.", nameof(name)),
    };
}
