using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Mixed precision for BEiT's linear layers, in the spirit of PyTorch's <c>torch.autocast</c> (which TorchSharp
/// lacks): inside <see cref="Enable"/>, linear layers multiply in the given type (bfloat16 runs about 5× faster than
/// float32 through libtorch on CPUs with AVX-512 BF16) and return float32. Parameters, gradients, norms, softmax and
/// losses stay float32.
/// </summary>
internal static class BeitAutocast
{
    [ThreadStatic] private static ScalarType? t_computeType;

    /// <summary>The compute type of linear layers on this thread, or null for full precision.</summary>
    public static ScalarType? ComputeType => t_computeType;

    /// <summary>Runs linear layers in <paramref name="computeType"/> on this thread until the returned scope is disposed.</summary>
    public static IDisposable Enable(ScalarType computeType = ScalarType.BFloat16) => new Scope(computeType);

    /// <summary>Applies <paramref name="layer"/> to <paramref name="input"/>, in the autocast type when one is enabled.</summary>
    public static Tensor Linear(Linear layer, Tensor input)
    {
        if (t_computeType is not ScalarType ct || input.dtype == ct) return layer.call(input);
        using var scope = NewDisposeScope();
        var y = nn.functional.linear(input.to(ct), layer.weight!.to(ct), layer.bias?.to(ct));
        return y.to(input.dtype).MoveToOuterDisposeScope();
    }

    private sealed class Scope : IDisposable
    {
        private readonly ScalarType? _previous;
        public Scope(ScalarType type) { _previous = t_computeType; t_computeType = type; }
        public void Dispose() => t_computeType = _previous;
    }
}
