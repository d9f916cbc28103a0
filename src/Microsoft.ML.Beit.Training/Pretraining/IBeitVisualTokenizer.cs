using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Pretraining;

/// <summary>
/// Turns images into one discrete visual token per patch: the targets BEiT's masked-image-modeling head predicts.
/// </summary>
public interface IBeitVisualTokenizer
{
    /// <summary>Number of distinct tokens (the MIM head's <c>vocab_size</c>).</summary>
    int VocabSize { get; }

    /// <summary>
    /// Token ids <c>int64 [B, Gh·Gw]</c>, row-major over the patch grid, for <paramref name="pixelValues"/>
    /// (<c>float32 [B, 3, H, W]</c>, normalised as the BEiT model sees it: mean/std 0.5 unless stated otherwise).
    /// </summary>
    Tensor Tokenize(Tensor pixelValues, int patchSize);
}
