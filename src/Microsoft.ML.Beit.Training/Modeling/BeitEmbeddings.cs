using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Hugging Face's <c>BeitPatchEmbeddings</c>: a stride-P convolution, flattened to <c>[B, N, D]</c> (row-major patches).</summary>
internal sealed class BeitPatchEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d projection;
    private readonly int _numChannels;

    /// <summary>Builds the patch projection for <paramref name="config"/>.</summary>
    public BeitPatchEmbeddings(BeitConfig config) : base(nameof(BeitPatchEmbeddings))
    {
        _numChannels = config.NumChannels;
        projection = nn.Conv2d(config.NumChannels, config.HiddenSize, kernel_size: config.PatchSize, stride: config.PatchSize);
        RegisterComponents();
    }

    /// <summary>Embeds <c>[B, C, H, W]</c> pixels as <c>[B, (H/P)·(W/P), D]</c>; pixels beyond a multiple of P are dropped.</summary>
    public override Tensor forward(Tensor pixelValues)
    {
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != _numChannels)
            throw new ArgumentException($"pixel_values must be [batch, {_numChannels}, height, width]; got [{string.Join(",", pixelValues.shape)}]. " +
                                        "Make sure that the channel dimension of the pixel values match with the one set in the configuration.", nameof(pixelValues));
        using var scope = NewDisposeScope();
        return projection.call(pixelValues).flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Hugging Face's <c>BeitEmbeddings</c>: patch embeddings, optional mask-token replacement of masked patches, the CLS
/// token prepended, optional absolute position embeddings (bicubically resized to other resolutions, as transformers
/// ≥ 4.45 and v5 do), then dropout.
/// </summary>
internal sealed class BeitEmbeddings : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly Parameter cls_token;
    private readonly Parameter? mask_token;
    private readonly BeitPatchEmbeddings patch_embeddings;
    private readonly Parameter? position_embeddings;
    private readonly Dropout dropout;
    private readonly int _patchSize;

    /// <summary>Builds the embeddings for <paramref name="config"/> (parameters zero, as Hugging Face initialises them).</summary>
    public BeitEmbeddings(BeitConfig config) : base(nameof(BeitEmbeddings))
    {
        _patchSize = config.PatchSize;
        cls_token = new Parameter(zeros(1, 1, config.HiddenSize));
        if (config.UseMaskToken) mask_token = new Parameter(zeros(1, 1, config.HiddenSize));
        patch_embeddings = new BeitPatchEmbeddings(config);
        if (config.UseAbsolutePositionEmbeddings)
            position_embeddings = new Parameter(zeros(1, (long)config.GridSize * config.GridSize + 1, config.HiddenSize));
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <summary>Embeds pixels <c>[B, C, H, W]</c> as tokens <c>[B, N+1, D]</c> (CLS first).</summary>
    /// <param name="pixelValues">Normalised pixels.</param>
    /// <param name="boolMaskedPos">Optional <c>[B, N]</c> boolean mask; masked patches are replaced by the mask token.</param>
    public override Tensor forward(Tensor pixelValues, Tensor? boolMaskedPos)
    {
        using var scope = NewDisposeScope();
        long height = pixelValues.shape[2], width = pixelValues.shape[3];
        var embeddings = patch_embeddings.call(pixelValues);
        long batch = embeddings.shape[0], seqLen = embeddings.shape[1];
        if (boolMaskedPos is not null)
        {
            if (mask_token is null)
                throw new InvalidOperationException("bool_masked_pos was given, but the model has no mask token (config use_mask_token is false).");
            if (boolMaskedPos.shape.Length != 2 || boolMaskedPos.shape[0] != batch || boolMaskedPos.shape[1] != seqLen)
                throw new ArgumentException($"bool_masked_pos must be [{batch}, {seqLen}]; got [{string.Join(",", boolMaskedPos.shape)}].", nameof(boolMaskedPos));
            var maskTokens = mask_token.expand(batch, seqLen, -1);
            var w = boolMaskedPos.unsqueeze(-1).to_type(maskTokens.dtype);
            embeddings = embeddings * (1 - w) + maskTokens * w;
        }
        embeddings = cat([cls_token.expand(batch, -1, -1), embeddings], 1);
        if (position_embeddings is not null)
            embeddings = embeddings + InterpolatePositionEmbeddings(embeddings.shape[1] - 1, height, width);
        return dropout.call(embeddings).MoveToOuterDisposeScope();
    }

    // ViT-style resize of the absolute position table to the actual grid (identity at the native square size).
    private Tensor InterpolatePositionEmbeddings(long numPatches, long height, long width)
    {
        var table = position_embeddings!;
        long numPositions = table.shape[1] - 1;
        if (numPatches == numPositions && height == width) return table;
        long dim = table.shape[2];
        long side = (long)Math.Sqrt(numPositions);
        var cls = table.narrow(1, 0, 1);
        var patch = table.narrow(1, 1, numPositions).reshape(1, side, side, dim).permute(0, 3, 1, 2);
        patch = nn.functional.interpolate(patch, size: [height / _patchSize, width / _patchSize], mode: InterpolationMode.Bicubic, align_corners: false);
        patch = patch.permute(0, 2, 3, 1).reshape(1, -1, dim);
        return cat([cls, patch], 1);
    }
}
