using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training;

/// <summary>Hugging Face's <c>BeitConvModule</c> (from mmsegmentation): Conv2d without bias → BatchNorm2d → ReLU.</summary>
internal sealed class BeitConvModule : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;
    private readonly ReLU activation;

    /// <summary>Builds the block.</summary>
    public BeitConvModule(long inChannels, long outChannels, long kernelSize, long padding = 0, long dilation = 1) : base(nameof(BeitConvModule))
    {
        conv = nn.Conv2d(inChannels, outChannels, kernelSize, padding: padding, dilation: dilation, bias: false);
        bn = nn.BatchNorm2d(outChannels);
        activation = nn.ReLU();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return activation.call(bn.call(conv.call(input))).MoveToOuterDisposeScope();
    }
}

/// <summary>One pyramid pooling branch: <c>0</c> = adaptive average pooling to s×s (PyTorch's exact, possibly overlapping bins), <c>1</c> = 1×1 <see cref="BeitConvModule"/>.</summary>
internal sealed class BeitPyramidPoolingBlock : nn.Module<Tensor, Tensor>
{
    [TorchSharp.Utils.ComponentName(Name = "0")]
    private readonly AdaptiveAvgPool2d _pool;
    [TorchSharp.Utils.ComponentName(Name = "1")]
    private readonly BeitConvModule _conv;

    /// <summary>Builds the branch for <paramref name="poolScale"/>.</summary>
    public BeitPyramidPoolingBlock(int poolScale, long inChannels, long channels) : base(nameof(BeitPyramidPoolingBlock))
    {
        _pool = nn.AdaptiveAvgPool2d(poolScale);
        _conv = new BeitConvModule(inChannels, channels, 1);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return _conv.call(_pool.call(input)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Hugging Face's <c>BeitUperHead</c> (UperNet): pyramid pooling on the coarsest map, lateral 1×1 convolutions,
/// a top-down path with bilinear upsampling (<c>align_corners=False</c>), 3×3 FPN convolutions, fusion at the finest
/// resolution, and a 1×1 <c>classifier</c>.
/// </summary>
internal sealed class BeitUperHead : nn.Module<IReadOnlyList<Tensor>, Tensor>
{
    private readonly Conv2d classifier;
    private readonly nn.Module psp_modules;
    private readonly BeitConvModule bottleneck;
    private readonly ModuleList<BeitConvModule> lateral_convs;
    private readonly ModuleList<BeitConvModule> fpn_convs;
    private readonly BeitConvModule fpn_bottleneck;
    private readonly BeitPyramidPoolingBlock[] _pspBlocks;

    /// <summary>Builds the head (channels = <c>hidden_size</c>, four input levels).</summary>
    public BeitUperHead(BeitConfig config) : base(nameof(BeitUperHead))
    {
        long channels = config.HiddenSize;
        const int levels = 4;
        classifier = nn.Conv2d(channels, config.NumLabels, 1);
        _pspBlocks = config.PoolScales.Select(s => new BeitPyramidPoolingBlock(s, channels, channels)).ToArray();
        psp_modules = new ModuleList<BeitPyramidPoolingBlock>(_pspBlocks);
        bottleneck = new BeitConvModule(channels + config.PoolScales.Length * channels, channels, 3, padding: 1);
        lateral_convs = new ModuleList<BeitConvModule>(Enumerable.Range(0, levels - 1).Select(_ => new BeitConvModule(channels, channels, 1)).ToArray());
        fpn_convs = new ModuleList<BeitConvModule>(Enumerable.Range(0, levels - 1).Select(_ => new BeitConvModule(channels, channels, 3, padding: 1)).ToArray());
        fpn_bottleneck = new BeitConvModule(levels * channels, channels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>Segments from four feature maps, finest first; returns logits at the finest map's resolution.</summary>
    public override Tensor forward(IReadOnlyList<Tensor> features)
    {
        using var scope = NewDisposeScope();
        var laterals = lateral_convs.Select((conv, i) => conv.call(features[i])).ToList();
        laterals.Add(PspForward(features[^1]));
        for (int i = laterals.Count - 1; i > 0; i--)
            laterals[i - 1] = laterals[i - 1] + Resize(laterals[i], laterals[i - 1]);
        var outs = Enumerable.Range(0, laterals.Count - 1).Select(i => fpn_convs[i].call(laterals[i])).ToList();
        outs.Add(laterals[^1]);
        for (int i = outs.Count - 1; i > 0; i--) outs[i] = Resize(outs[i], outs[0]);
        var fused = fpn_bottleneck.call(cat(outs, 1));
        return classifier.call(fused).MoveToOuterDisposeScope();
    }

    private Tensor PspForward(Tensor x)
    {
        var outs = new List<Tensor> { x };
        outs.AddRange(_pspBlocks.Select(block => Resize(block.call(x), x)));
        return bottleneck.call(cat(outs, 1));
    }

    internal static Tensor Resize(Tensor x, Tensor like) =>
        nn.functional.interpolate(x, size: [like.shape[2], like.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false);
}

/// <summary>
/// Hugging Face's <c>BeitFCNHead</c>, the auxiliary head: <c>auxiliary_num_convs</c> 3×3 <see cref="BeitConvModule"/>s
/// on the third feature map, an optional concat with the input (<c>conv_cat</c>), and a 1×1 <c>classifier</c>.
/// </summary>
internal sealed class BeitFCNHead : nn.Module<IReadOnlyList<Tensor>, Tensor>
{
    private readonly Sequential? convs;
    private readonly BeitConvModule? conv_cat;
    private readonly Conv2d classifier;
    private readonly int _inIndex;

    /// <summary>Builds the head reading feature map <paramref name="inIndex"/>.</summary>
    public BeitFCNHead(BeitConfig config, int inIndex = 2, int kernelSize = 3, int dilation = 1) : base(nameof(BeitFCNHead))
    {
        _inIndex = inIndex;
        long inChannels = config.HiddenSize, channels = config.AuxiliaryChannels;
        if (config.AuxiliaryNumConvs == 0 && channels != inChannels)
            throw new ArgumentException($"auxiliary_num_convs = 0 feeds the hidden states (hidden_size {inChannels}) straight to the auxiliary head, " +
                                        $"which then needs auxiliary_channels = {inChannels} (got {channels}).", nameof(config));
        long padding = kernelSize / 2 * dilation;
        if (config.AuxiliaryNumConvs > 0)
        {
            convs = nn.Sequential(Enumerable.Range(0, config.AuxiliaryNumConvs)
                .Select(i => (i.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    (nn.Module<Tensor, Tensor>)new BeitConvModule(i == 0 ? inChannels : channels, channels, kernelSize, padding, dilation))));
        }
        if (config.AuxiliaryConcatInput)
            conv_cat = new BeitConvModule(inChannels + channels, channels, kernelSize, padding: kernelSize / 2);
        classifier = nn.Conv2d(channels, config.NumLabels, 1);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(IReadOnlyList<Tensor> features)
    {
        using var scope = NewDisposeScope();
        var hidden = features[_inIndex];
        var output = convs is null ? hidden : convs.call(hidden);
        if (conv_cat is not null) output = conv_cat.call(cat([hidden, output], 1));
        return classifier.call(output).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Hugging Face's <c>BeitForSemanticSegmentation</c>: <see cref="BeitModel"/> without pooler; the hidden states
/// <c>hidden_states[i]</c> with <c>i+1</c> in <c>out_indices</c> reshaped to maps at the config resolution; the FPN
/// (<c>fpn1</c>: ConvT→BN→GELU→ConvT ×4, <c>fpn2</c>: ConvT ×2, <c>fpn3</c>: identity, <c>fpn4</c>: max-pool ½);
/// the UperNet <c>decode_head</c> and the FCN <c>auxiliary_head</c>. The loss upsamples both logits bilinearly to the
/// label size and adds <c>auxiliary_loss_weight</c> × the auxiliary cross-entropy; labels equal to
/// <c>semantic_loss_ignore_index</c> (255) are ignored.
/// </summary>
public sealed class BeitForSemanticSegmentation : BeitPreTrainedModel
{
    private readonly BeitModel beit;
    private readonly Sequential fpn1;
    private readonly Sequential fpn2;
    private readonly MaxPool2d fpn4;
    private readonly BeitUperHead decode_head;
    private readonly BeitFCNHead? auxiliary_head;

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation).</summary>
    /// <exception cref="ArgumentException">The configuration does not select exactly four feature maps.</exception>
    public BeitForSemanticSegmentation(BeitConfig config) : base(nameof(BeitForSemanticSegmentation), config)
    {
        config.ValidateSegmentationHead();
        // Hugging Face keeps hidden_states[i] for each i with i+1 in out_indices: four distinct values in 1..L are needed.
        var outIndices = config.ResolvedOutIndices();
        if (outIndices.Length != 4 || outIndices.Where(i => i >= 1 && i <= config.NumHiddenLayers).Distinct().Count() != 4)
            throw new ArgumentException($"BeitForSemanticSegmentation requires config out_indices to be a list of 4 distinct integers in 1..{config.NumHiddenLayers} " +
                                        $"(got [{string.Join(", ", outIndices)}]), specifying which features to use from the backbone " +
                                        "(for example [3, 5, 7, 11] for a base-sized model).", nameof(config));
        long d = config.HiddenSize;
        beit = new BeitModel(config, addPoolingLayer: false, initialize: false);
        fpn1 = nn.Sequential(
            ("0", nn.ConvTranspose2d(d, d, 2, stride: 2)),
            ("1", nn.BatchNorm2d(d)),
            ("2", nn.GELU()),
            ("3", nn.ConvTranspose2d(d, d, 2, stride: 2)));
        fpn2 = nn.Sequential(("0", nn.ConvTranspose2d(d, d, 2, stride: 2)));
        fpn4 = nn.MaxPool2d(2, 2);
        decode_head = new BeitUperHead(config);
        if (config.UseAuxiliaryHead) auxiliary_head = new BeitFCNHead(config);
        RegisterComponents();
        InitWeights();
    }

    /// <summary>Loads a Hugging Face checkpoint folder.</summary>
    /// <param name="folder">The checkpoint folder, or a Hugging Face model id such as <c>microsoft/beit-base-patch16-224</c>.</param>
    /// <param name="config">Overrides the folder's configuration.</param>
    /// <param name="strict">Throw on missing or unexpected tensors (wrong shapes always throw).</param>
    /// <exception cref="Microsoft.ML.Beit.Checkpoints.CheckpointMismatchException">The tensors do not fit; each one is named.</exception>
    public static BeitForSemanticSegmentation FromPretrained(string folder, BeitConfig? config = null, bool strict = true) =>
        LoadPretrained(folder, config, strict, c => new BeitForSemanticSegmentation(c));

    /// <summary>The backbone.</summary>
    public BeitModel Beit => beit;

    /// <summary>Segments <c>[B, C, S, S]</c> pixels, S = <c>image_size</c>; logits are <c>[B, num_labels, S/4, S/4]</c> for patch 16.</summary>
    /// <param name="pixelValues">Normalised pixels at the config resolution.</param>
    /// <param name="labels">Optional <c>[B, h, w]</c> class ids (any size; logits are upsampled to it).</param>
    /// <param name="headMask">Optional head mask, see <see cref="BeitModel.forward"/>.</param>
    /// <param name="outputAttentions">Return each layer's attention probabilities.</param>
    /// <param name="outputHiddenStates">Return the hidden states.</param>
    /// <param name="interpolatePosEncoding">Hugging Face's flag.</param>
    public BeitSemanticSegmenterOutput forward(Tensor pixelValues, Tensor? labels = null, Tensor? headMask = null,
        bool outputAttentions = false, bool outputHiddenStates = false, bool interpolatePosEncoding = false)
    {
        if (labels is not null && Config.NumLabels == 1) throw new ArgumentException("The number of labels should be greater than one", nameof(labels));
        // Hugging Face reshapes the tokens to the config's grid, so only that resolution works.
        if (pixelValues.dim() != 4 || pixelValues.shape[2] / Config.PatchSize != Config.GridSize || pixelValues.shape[3] / Config.PatchSize != Config.GridSize)
            throw new ArgumentException($"BeitForSemanticSegmentation needs pixel_values of {Config.ImageSize}x{Config.ImageSize} (config image_size); " +
                                        $"got [{string.Join(",", pixelValues.shape)}].", nameof(pixelValues));
        using var scope = NewDisposeScope();
        var outputs = beit.forward(pixelValues, null, headMask, outputAttentions, outputHiddenStates: true, interpolatePosEncoding);
        var outIndices = Config.ResolvedOutIndices();
        long batch = pixelValues.shape[0], side = Config.GridSize;
        var features = outputs.HiddenStates!
            .Where((_, idx) => outIndices.Contains(idx + 1))
            .Select(x => x.narrow(1, 1, x.shape[1] - 1).permute(0, 2, 1).reshape(batch, -1, side, side))
            .ToList();
        var ops = new Func<Tensor, Tensor>[] { fpn1.call, fpn2.call, x => x.alias(), fpn4.call };
        for (int i = 0; i < features.Count; i++) features[i] = ops[i](features[i]);

        var logits = decode_head.call(features);
        var auxiliary = auxiliary_head?.call(features);
        Tensor? loss = null;
        if (labels is not null)
        {
            var target = labels.to(logits.device).to_type(ScalarType.Int64);
            long[] size = [target.shape[^2], target.shape[^1]];
            Tensor Ce(Tensor l) => nn.functional.cross_entropy(
                nn.functional.interpolate(l, size: size, mode: InterpolationMode.Bilinear, align_corners: false), target,
                ignore_index: Config.SemanticLossIgnoreIndex);
            loss = Ce(logits);
            if (auxiliary is not null) loss = loss + Config.AuxiliaryLossWeight * Ce(auxiliary);
        }
        var result = new BeitSemanticSegmenterOutput
        {
            Loss = loss,
            Logits = logits,
            AuxiliaryLogits = auxiliary,
            FeatureMaps = features,
            HiddenStates = outputHiddenStates ? outputs.HiddenStates : null,
            Attentions = outputs.Attentions,
        };
        result.MoveToOuterDisposeScope();
        return result;
    }
}
