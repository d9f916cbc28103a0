using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Microsoft.ML.Beit.Attention;

/// <summary>How an attention map over the patch grid is computed from the per-layer attention probabilities.</summary>
public enum BeitAttentionMethod
{
    /// <summary>
    /// Attention rollout (Abnar &amp; Zuidema 2020, "Quantifying Attention Flow in Transformers", §3): per layer, average
    /// the heads, add the identity for the residual connection and renormalise each row; multiply the layers' matrices
    /// (the latest on the left); the CLS row over the patches is the map.
    /// </summary>
    Rollout,
    /// <summary>One layer's attention from the CLS token to each patch, averaged over the heads.</summary>
    Cls,
}

/// <summary>
/// The attention probabilities of one image through a BEiT encoder, as Hugging Face returns them with
/// <c>output_attentions=True</c> (softmax of <c>QKᵀ/√dh</c> plus the relative position bias), per layer and head, and the
/// maps derived from them: <see cref="Rollout"/> and <see cref="ClsAttention"/>, each reshaped to the patch grid
/// (<c>(height, width)</c>, row-major).
/// </summary>
/// <remarks>
/// Token 0 is CLS; token <c>1 + r·GridWidth + c</c> is the patch in row r, column c. Get one from the TorchSharp model
/// (<c>BeitAttentionMapsTorch.FromOutput</c> in Microsoft.ML.Beit.Training), from an ONNX graph exported with
/// <see cref="BeitOnnxExportOptions.OutputAttentions"/> (<see cref="FromOnnx"/>), or from any model through
/// <see cref="BeitAttentionExplainer"/>.
/// </remarks>
public sealed class BeitAttentionMaps
{
    private readonly float[][] _layers;

    /// <summary>Wraps per-layer probabilities <c>[heads, tokens, tokens]</c> (row-major, not copied) of one image.</summary>
    /// <param name="layers">One array per layer, in order, each holding <c>heads·tokens·tokens</c> values.</param>
    /// <param name="heads">Attention heads per layer.</param>
    /// <param name="grid">The patch grid; <c>tokens = 1 + height·width</c>.</param>
    /// <exception cref="ArgumentException">The sizes disagree.</exception>
    public BeitAttentionMaps(IReadOnlyList<float[]> layers, int heads, PixelSize grid)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0) throw new ArgumentException("At least one layer is needed.", nameof(layers));
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), "heads must be positive.");
        if (grid.Height <= 0 || grid.Width <= 0) throw new ArgumentOutOfRangeException(nameof(grid), $"The grid {grid.Height}x{grid.Width} must be positive.");
        long tokens = 1 + (long)grid.Height * grid.Width;
        long per = checked(heads * tokens * tokens);
        if (per > Array.MaxLength) throw new ArgumentException($"{heads} heads of {tokens}×{tokens} do not fit one array.", nameof(grid));
        for (int l = 0; l < layers.Count; l++)
            if (layers[l] is null || layers[l].LongLength != per)
                throw new ArgumentException($"Layer {l} holds {layers[l]?.LongLength ?? 0} values; [{heads}, {tokens}, {tokens}] needs {per}.", nameof(layers));
        _layers = layers.ToArray();
        Heads = heads;
        Grid = grid;
        Tokens = (int)tokens;
    }

    /// <summary>Encoder layers.</summary>
    public int Layers => _layers.Length;

    /// <summary>Heads per layer.</summary>
    public int Heads { get; }

    /// <summary>Tokens: CLS plus one per patch.</summary>
    public int Tokens { get; }

    /// <summary>The patch grid, <c>(height, width)</c>.</summary>
    public PixelSize Grid { get; }

    /// <summary>The probability that <paramref name="query"/> attends to <paramref name="key"/> in one layer and head.</summary>
    public float this[int layer, int head, int query, int key]
    {
        get
        {
            CheckLayer(layer);
            if ((uint)head >= (uint)Heads) throw new ArgumentOutOfRangeException(nameof(head));
            if ((uint)query >= (uint)Tokens) throw new ArgumentOutOfRangeException(nameof(query));
            if ((uint)key >= (uint)Tokens) throw new ArgumentOutOfRangeException(nameof(key));
            return _layers[layer][((long)head * Tokens + query) * Tokens + key];
        }
    }

    /// <summary>One layer's probabilities, <c>[heads, tokens, tokens]</c> row-major.</summary>
    public ReadOnlySpan<float> Layer(int layer)
    {
        CheckLayer(layer);
        return _layers[layer];
    }

    /// <summary>One layer's probabilities averaged over the heads, <c>[tokens, tokens]</c>.</summary>
    public float[] HeadMean(int layer)
    {
        CheckLayer(layer);
        int t = Tokens;
        var mean = new double[(long)t * t];
        var src = _layers[layer];
        for (int h = 0; h < Heads; h++)
        {
            long o = (long)h * t * t;
            for (long i = 0; i < mean.LongLength; i++) mean[i] += src[o + i];
        }
        var result = new float[mean.Length];
        for (long i = 0; i < mean.LongLength; i++) result[i] = (float)(mean[i] / Heads);
        return result;
    }

    /// <summary>
    /// Attention rollout through layers 0..<paramref name="throughLayer"/> (default: all), <c>[tokens, tokens]</c>:
    /// <c>R = Â_l · … · Â_0</c> with <c>Â = rownorm(mean_heads(A) + I)</c> (Abnar &amp; Zuidema 2020). Rows sum to 1.
    /// Computed in double precision.
    /// </summary>
    public double[] Rollout(int? throughLayer = null)
    {
        int last = throughLayer ?? Layers - 1;
        CheckLayer(last);
        int t = Tokens;
        double[]? rollout = null;
        for (int l = 0; l <= last; l++)
        {
            var a = Residual(l);
            rollout = rollout is null ? a : MatMul(a, rollout, t);
        }
        return rollout!;
    }

    // Â_l = rownorm(mean_heads(A_l) + I).
    private double[] Residual(int layer)
    {
        int t = Tokens;
        var mean = HeadMean(layer);
        var a = new double[(long)t * t];
        for (int i = 0; i < t; i++)
        {
            double sum = 0;
            for (int j = 0; j < t; j++)
            {
                double v = mean[(long)i * t + j] + (i == j ? 1.0 : 0.0);
                a[(long)i * t + j] = v;
                sum += v;
            }
            for (int j = 0; j < t; j++) a[(long)i * t + j] /= sum;
        }
        return a;
    }

    /// <summary>
    /// The map over the patch grid, <c>[height·width]</c> row-major: the CLS row of <see cref="Rollout"/> through
    /// <paramref name="layer"/> for <see cref="BeitAttentionMethod.Rollout"/>, or layer <paramref name="layer"/>'s
    /// CLS-to-patch attention averaged over heads for <see cref="BeitAttentionMethod.Cls"/>. The CLS-to-CLS entry is left
    /// out, so the values need not sum to 1. <paramref name="layer"/> defaults to the last.
    /// </summary>
    public float[] Map(BeitAttentionMethod method, int? layer = null)
    {
        int l = layer ?? Layers - 1;
        CheckLayer(l);
        int t = Tokens;
        var map = new float[t - 1];
        switch (method)
        {
            case BeitAttentionMethod.Rollout:
            {
                // The CLS row of Â_l·…·Â_0, as a row vector times each matrix (t² per layer instead of t³).
                var row = new double[t];
                row[0] = 1;
                for (int k = l; k >= 0; k--)
                {
                    var a = Residual(k);
                    var next = new double[t];
                    for (int i = 0; i < t; i++)
                    {
                        double v = row[i];
                        if (v == 0) continue;
                        for (int j = 0; j < t; j++) next[j] += v * a[(long)i * t + j];
                    }
                    row = next;
                }
                for (int j = 1; j < t; j++) map[j - 1] = (float)row[j];
                break;
            }
            case BeitAttentionMethod.Cls:
                return ClsAttention(l);
            default:
                throw new ArgumentOutOfRangeException(nameof(method), method, "Unknown BeitAttentionMethod.");
        }
        return map;
    }

    /// <summary>Layer <paramref name="layer"/>'s attention from CLS to each patch, averaged over heads, <c>[height·width]</c>.</summary>
    public float[] ClsAttention(int layer)
    {
        CheckLayer(layer);
        int t = Tokens;
        var src = _layers[layer];
        var map = new float[t - 1];
        for (int j = 1; j < t; j++)
        {
            double s = 0;
            for (int h = 0; h < Heads; h++) s += src[(long)h * t * t + j];
            map[j - 1] = (float)(s / Heads);
        }
        return map;
    }

    /// <summary>
    /// Reads the <c>attentions.{l}</c> outputs of image <paramref name="image"/> from a run of a graph exported with
    /// <see cref="BeitOnnxExportOptions.OutputAttentions"/> (or passed through <see cref="BeitOnnxAttention.AddOutputs(byte[])"/>).
    /// </summary>
    /// <param name="outputs">The run's outputs (<see cref="BeitOnnxSession.Run"/>).</param>
    /// <param name="grid">The patch grid of the input (height and width divided by the patch size).</param>
    /// <param name="image">The image's index in the batch.</param>
    /// <exception cref="InvalidDataException">The outputs hold no attentions, or their shapes disagree with the grid.</exception>
    public static BeitAttentionMaps FromOutputs(IReadOnlyDictionary<string, TensorData> outputs, PixelSize grid, int image = 0)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        var layers = new List<float[]>();
        int heads = 0;
        long tokens = 1 + (long)grid.Height * grid.Width;
        for (int l = 0; outputs.TryGetValue(BeitOnnxAttention.OutputName(l), out var t); l++)
        {
            if (t.DType != TensorDType.F32 || t.Shape.Length != 4 || t.Shape[2] != tokens || t.Shape[3] != tokens || t.Shape[1] <= 0)
                throw new InvalidDataException($"Output '{BeitOnnxAttention.OutputName(l)}' is {t}; expected F32[batch, heads, {tokens}, {tokens}] for a {grid.Height}x{grid.Width} grid.");
            if (image < 0 || image >= t.Shape[0]) throw new ArgumentOutOfRangeException(nameof(image), $"The batch holds {t.Shape[0]} images.");
            if (heads == 0) heads = checked((int)t.Shape[1]);
            else if (heads != t.Shape[1]) throw new InvalidDataException($"Output '{BeitOnnxAttention.OutputName(l)}' has {t.Shape[1]} heads, layer 0 has {heads}.");
            var all = t.ToFloatArray();
            long per = heads * tokens * tokens;
            layers.Add(all.AsSpan(checked((int)(image * per)), checked((int)per)).ToArray());
        }
        if (layers.Count == 0)
            throw new InvalidDataException($"The outputs hold no '{BeitOnnxAttention.OutputName(0)}': export with BeitOnnxExportOptions.OutputAttentions, or pass the graph through BeitOnnxAttention.AddOutputs.");
        return new BeitAttentionMaps(layers, heads, grid);
    }

    /// <summary>Runs one preprocessed image <c>[C, H, W]</c> through <paramref name="session"/> (a graph with attention outputs) and reads its maps.</summary>
    /// <param name="session">A session over a graph with <c>attentions.{l}</c> outputs.</param>
    /// <param name="pixelValues">One image, <c>[C, H, W]</c>, at the graph's input size.</param>
    /// <param name="patchSize">The model's patch size.</param>
    public static BeitAttentionMaps FromOnnx(BeitOnnxSession session, float[] pixelValues, int patchSize)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (patchSize <= 0 || session.ImageHeight % patchSize != 0 || session.ImageWidth % patchSize != 0)
            throw new ArgumentOutOfRangeException(nameof(patchSize), $"The input {session.ImageHeight}x{session.ImageWidth} is not a multiple of patch size {patchSize}.");
        var names = session.OutputNames.Where(n => n.StartsWith("attentions.", StringComparison.Ordinal)).ToArray();
        if (names.Length == 0)
            throw new InvalidDataException("The graph has no attentions.{l} outputs: export with BeitOnnxExportOptions.OutputAttentions, or pass it through BeitOnnxAttention.AddOutputs.");
        var outputs = session.Run(pixelValues, 1, outputNames: names);
        return FromOutputs(outputs, new PixelSize(session.ImageHeight / patchSize, session.ImageWidth / patchSize));
    }

    private void CheckLayer(int layer)
    {
        if ((uint)layer >= (uint)Layers) throw new ArgumentOutOfRangeException(nameof(layer), $"layer must be in 0..{Layers - 1}, got {layer}.");
    }

    // c = a·b for t×t matrices.
    private static double[] MatMul(double[] a, double[] b, int t)
    {
        var c = new double[(long)t * t];
        for (int i = 0; i < t; i++)
        {
            for (int k = 0; k < t; k++)
            {
                double v = a[(long)i * t + k];
                if (v == 0) continue;
                long bo = (long)k * t, co = (long)i * t;
                for (int j = 0; j < t; j++) c[co + j] += v * b[bo + j];
            }
        }
        return c;
    }
}
