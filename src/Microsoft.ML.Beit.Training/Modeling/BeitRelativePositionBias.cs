using Microsoft.ML.Beit.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// Hugging Face's <c>BeitRelativePositionBias</c>: a table of <c>(2Gh−1)(2Gw−1)+3</c> rows × heads for the config's
/// window, gathered through the relative position index (<see cref="BeitGeometry.RelativePositionIndex"/>) into a
/// <c>[1, heads, N+1, N+1]</c> attention bias. For another resolution the offset rows are resized bilinearly
/// (<c>align_corners=False</c>) to the new window, as transformers does since mid-2024.
/// </summary>
internal sealed class BeitRelativePositionBias : nn.Module
{
    private readonly Parameter relative_position_bias_table;
    private readonly int _windowH, _windowW;
    // Index tensors per (window, device); a dictionary, so TorchSharp does not register them as buffers.
    private readonly Dictionary<(int, int, DeviceType, int), Tensor> _indexCache = new();

    /// <summary>Builds a zero table for the window of <paramref name="config"/> (<c>image_size / patch_size</c>).</summary>
    public BeitRelativePositionBias(BeitConfig config) : base(nameof(BeitRelativePositionBias))
    {
        _windowH = _windowW = config.GridSize;
        relative_position_bias_table = new Parameter(zeros(BeitGeometry.RelativeTableRows(_windowH, _windowW), config.NumAttentionHeads));
        RegisterComponents();
    }

    /// <summary>The <c>[1, heads, T, T]</c> bias for a <paramref name="windowH"/>×<paramref name="windowW"/> patch grid (T = grid + 1).</summary>
    /// <param name="windowH">Patch rows of the input.</param>
    /// <param name="windowW">Patch columns of the input.</param>
    /// <param name="interpolatePosEncoding">Also resizes the finished bias to <paramref name="dimSize"/> tokens (Hugging Face's flag; an identity in practice).</param>
    /// <param name="dimSize">The token count of the hidden states.</param>
    public Tensor forward(int windowH, int windowW, bool interpolatePosEncoding, long dimSize)
    {
        using var scope = NewDisposeScope();
        var table = relative_position_bias_table;
        int oldH = 2 * _windowH - 1, oldW = 2 * _windowW - 1;
        int newH = 2 * windowH - 1, newW = 2 * windowW - 1;
        long oldRows = (long)oldH * oldW;
        Tensor newTable = table;
        if (newH != oldH || newW != oldW)
        {
            // transformers reshapes as (width, height); identical for the square windows BeitConfig allows.
            var sub = table.narrow(0, 0, oldRows).reshape(1, oldW, oldH, -1).permute(0, 3, 1, 2);
            sub = nn.functional.interpolate(sub, size: [newH, newW], mode: InterpolationMode.Bilinear, align_corners: false);
            sub = sub.permute(0, 2, 3, 1).reshape((long)newH * newW, -1);
            newTable = cat([sub, table.narrow(0, oldRows, 3)], 0);
        }
        long tokens = (long)windowH * windowW + 1;
        var bias = newTable.index_select(0, Index(windowH, windowW, table.device))
            .view(tokens, tokens, -1).permute(2, 0, 1).contiguous();
        if (interpolatePosEncoding && dimSize != tokens)
        {
            bias = nn.functional.interpolate(bias.unsqueeze(1), size: [dimSize, dimSize], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(1);
        }
        return bias.unsqueeze(0).MoveToOuterDisposeScope();
    }

    private Tensor Index(int h, int w, Device device)
    {
        var key = (h, w, device.type, device.index);
        if (!_indexCache.TryGetValue(key, out var index))
        {
            using (NewDisposeScope())
            {
                index = tensor(BeitGeometry.RelativePositionIndex(h, w)).to(device).MoveToOuterDisposeScope();
            }
            index.DetachFromDisposeScope();
            _indexCache[key] = index;
        }
        return index;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var t in _indexCache.Values) t.Dispose();
            _indexCache.Clear();
        }
        base.Dispose(disposing);
    }
}
