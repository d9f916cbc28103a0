using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Processing;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Builds <see cref="BeitAttentionMaps"/> from the TorchSharp models' <c>output_attentions</c>.</summary>
public static class BeitAttentionMapsTorch
{
    /// <summary>
    /// Image <paramref name="image"/>'s maps from a forward run with <c>outputAttentions: true</c> (for example
    /// <see cref="BeitForImageClassification"/>'s <c>forward(pixels, outputAttentions: true)</c>). The tensors are copied to
    /// float32 on the CPU; the output still owns (and disposes) them.
    /// </summary>
    /// <param name="output">The model's output.</param>
    /// <param name="grid">The input's patch grid: its pixel height and width divided by the patch size.</param>
    /// <param name="image">The image's index in the batch.</param>
    /// <exception cref="ArgumentException">The output holds no attentions, or their shapes disagree with the grid.</exception>
    public static BeitAttentionMaps FromOutput(BeitOutputBase output, PixelSize grid, int image = 0)
    {
        ArgumentNullException.ThrowIfNull(output);
        var attentions = output.Attentions;
        if (attentions is null || attentions.Count == 0)
            throw new ArgumentException("The output holds no attentions: run forward with outputAttentions: true.", nameof(output));
        long tokens = 1 + (long)grid.Height * grid.Width;
        var layers = new List<float[]>(attentions.Count);
        int heads = 0;
        foreach (var a in attentions)
        {
            if (a.dim() != 4 || a.shape[2] != tokens || a.shape[3] != tokens)
                throw new ArgumentException($"An attention tensor is [{string.Join(", ", a.shape)}]; a {grid.Height}x{grid.Width} grid needs [batch, heads, {tokens}, {tokens}].", nameof(grid));
            if (image < 0 || image >= a.shape[0]) throw new ArgumentOutOfRangeException(nameof(image), $"The batch holds {a.shape[0]} images.");
            heads = (int)a.shape[1];
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            layers.Add(a[image].detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray());
        }
        return new BeitAttentionMaps(layers, heads, grid);
    }
}
