namespace Microsoft.ML.Beit;

/// <summary>
/// Upper bounds on what the checkpoint and configuration readers accept from a file. Every file comes from a stranger
/// (the Hugging Face Hub), so each reader checks these before it allocates anything sized by the file; a file that
/// crosses one is refused with <see cref="InvalidDataException"/> naming the file and the field. The bounds sit far above
/// every published BEiT (the largest, BEiT-large at 512×512, has 24 layers of width 1024, a 32×32 patch grid and
/// 21,841 ImageNet-22k labels) and far below what would exhaust a machine. README's "Security and failure behaviour —
/// checkpoints and configs" lists them.
/// </summary>
internal static class BeitLimits
{
    // ------------------------------------------------------------------ files

    /// <summary>Largest <c>config.json</c> read (16 MiB; an ImageNet-22k config with both label maps is under 2 MB).</summary>
    public const long MaxConfigFileBytes = 16L << 20;

    /// <summary>Largest <c>preprocessor_config.json</c> read (1 MiB; real ones are under 1 KB).</summary>
    public const long MaxPreprocessorConfigFileBytes = 1L << 20;

    /// <summary>Largest sharded-checkpoint index (<c>*.index.json</c>) read (16 MiB).</summary>
    public const long MaxIndexFileBytes = 16L << 20;

    /// <summary>Largest safetensors JSON header (100 MB, the bound of the reference Rust reader).</summary>
    public const long MaxSafeTensorsHeaderBytes = 100L * 1024 * 1024;

    /// <summary>Deepest JSON nesting accepted in any of these files (real ones nest at most 3 levels).</summary>
    public const int MaxJsonDepth = 64;

    /// <summary>Largest <c>data.pkl</c> inside a <c>pytorch_model.bin</c> (16 MiB; the tiny fixture's, 4 layers, is 12 KB; BEiT-large's about 0.1 MB).</summary>
    public const long MaxPickleBytes = 16L << 20;

    /// <summary>Most memo entries of a pickle (200,000; a state dict memoizes about 10 values per tensor).</summary>
    public const int MaxPickleMemo = 200_000;

    /// <summary>
    /// Most values a pickle may push in all (1,000,000). Opcodes are one byte but the values they
    /// push take tens of bytes, so this, not the file size, bounds the memory; a state dict pushes about 25 per tensor.
    /// </summary>
    public const int MaxPickleValues = 1_000_000;

    /// <summary>Most containers (tuples, lists, dicts, sets) a pickle may build (100,000; a state dict builds about 5 per tensor).</summary>
    public const int MaxPickleContainers = 100_000;

    /// <summary>
    /// Deepest tuple nesting in a pickle. A state dict nests tuples two levels deep (rebuild arguments holding a size
    /// tuple); deeper nesting only serves to exhaust the stack of whatever walks the value.
    /// </summary>
    public const int MaxPickleNesting = 100;

    /// <summary>
    /// Widest integer a pickle may hold, in bytes (LONG1/LONG4); the decimal LONG opcode may carry at most
    /// <see cref="MaxPickleIntegerDigits"/> characters. Tensor sizes, strides and offsets are 64-bit in PyTorch.
    /// </summary>
    public const int MaxPickleIntegerBytes = 8;

    /// <summary>Longest decimal integer literal in a pickle (sign, 19 digits and Python 2's trailing <c>L</c>).</summary>
    public const int MaxPickleIntegerDigits = 21;

    /// <summary>
    /// Tensors rebuilt from a <c>pytorch_model.bin</c> may hold at most this many times the bytes of the file, plus
    /// <see cref="PickleMaterializeSlackBytes"/>. A view with a zero stride (PyTorch's <c>expand</c>) stores one element and
    /// reads as many; without this bound a 1-byte storage could ask for gigabytes.
    /// </summary>
    public const int MaxPickleMaterializeFactor = 2;

    /// <summary>Fixed allowance added to <see cref="MaxPickleMaterializeFactor"/> times the file size (1 MiB).</summary>
    public const long PickleMaterializeSlackBytes = 1L << 20;

    /// <summary>Largest deflate expansion ratio (the format's own maximum is about 1032:1).</summary>
    public const int MaxDeflateRatio = 1032;

    // ------------------------------------------------------------------ tensors

    /// <summary>
    /// Most elements in one tensor (2³¹ − 1): tensors are .NET arrays, indexed by <see cref="int"/>; the largest BEiT
    /// tensor (BEiT-large's ImageNet-22k classifier) has 22 M.
    /// </summary>
    public const long MaxTensorElements = int.MaxValue;

    /// <summary>Most dimensions of one tensor (PyTorch allows 64).</summary>
    public const int MaxTensorRank = 64;

    // ------------------------------------------------------------------ architecture (config.json)

    /// <summary>Largest <c>image_size</c> side (8192 px).</summary>
    public const int MaxImageSide = 8192;

    /// <summary>
    /// Most patches at the native resolution (<c>(image_size / patch_size)²</c>): 4096, a 64×64 grid (1024 px with
    /// 16 px patches). The relative-position index of each layer has (patches + 1)² entries (Bao et al. 2021, arXiv:2106.08254;
    /// transformers' <c>BeitRelativePositionBias</c>): 16.8 M at this bound.
    /// </summary>
    public const int MaxNumPatches = 4096;

    /// <summary>Largest <c>hidden_size</c> (16384; BEiT-large uses 1024, ViT-22B 6144).</summary>
    public const int MaxHiddenSize = 16384;

    /// <summary>Largest <c>intermediate_size</c> (65536; ViT-22B uses 24576).</summary>
    public const int MaxIntermediateSize = 65536;

    /// <summary>Most transformer layers (<c>num_hidden_layers</c>, 256; BEiT-large has 24, ViT-22B 48).</summary>
    public const int MaxNumHiddenLayers = 256;

    /// <summary>Most attention heads (1024).</summary>
    public const int MaxNumAttentionHeads = 1024;

    /// <summary>Most input channels (<c>num_channels</c>, 256).</summary>
    public const int MaxNumChannels = 256;

    /// <summary>Most classes (<c>num_labels</c>, <c>id2label</c>, <c>label2id</c>: 100,000; ImageNet-22k has 21,841).</summary>
    public const int MaxNumLabels = 100_000;

    /// <summary>Largest visual-token vocabulary (<c>vocab_size</c>, 2¹⁸; BEiT's DALL-E tokenizer has 8192).</summary>
    public const int MaxVocabSize = 1 << 18;

    /// <summary>Most channels of the segmentation heads (<c>auxiliary_channels</c>, 16384).</summary>
    public const int MaxAuxiliaryChannels = 16384;

    /// <summary>Most convolutions of the auxiliary head and most pyramid pooling scales (64 each).</summary>
    public const int MaxSmallCount = 64;

    /// <summary>
    /// Most parameters the configuration may describe, estimated from its sizes before anything is built
    /// (2³², 16 GiB of float32; BEiT-large has 0.3 G).
    /// </summary>
    public const long MaxParameters = 1L << 32;
}
