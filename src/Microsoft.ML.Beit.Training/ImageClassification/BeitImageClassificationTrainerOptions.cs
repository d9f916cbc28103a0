namespace Microsoft.ML.Beit.Training.ImageClassification;

public sealed partial class BeitImageClassificationTrainer
{
    /// <summary>
    /// Options of <see cref="BeitImageClassificationTrainer"/>. Defaults follow the BEiT fine-tuning recipe (the ImageNet fine-tuning hyperparameters of
    /// Bao et al. 2021, arXiv:2106.08254, appendix; microsoft/unilm <c>beit/run_class_finetuning.py</c>)
    /// scaled to small data: AdamW, layer decay 0.65, weight decay 0.05, warm-up then cosine, drop path 0.1, label
    /// smoothing 0.1, random resized crop + flip.
    /// </summary>
    public sealed class Options : BeitTrainerOptions
    {
        /// <summary>Key column of class labels (ML.NET's <c>Label</c>).</summary>
        public string LabelColumnName { get; set; } = "Label";
        /// <summary>Pixel-values column produced by <c>mlContext.Transforms.BeitImageProcessor</c>.</summary>
        public string FeatureColumnName { get; set; } = "PixelValues";
        /// <summary>Probabilities column of the returned transformer.</summary>
        public string ScoreColumnName { get; set; } = "Score";
        /// <summary>Predicted-label key column of the returned transformer.</summary>
        public string PredictedLabelColumnName { get; set; } = "PredictedLabel";
        /// <summary>Label smoothing ε; 0 gives plain cross-entropy.</summary>
        public double LabelSmoothing { get; set; } = 0.1;
        /// <summary>Mixup α; 0 disables mixup.</summary>
        public double MixupAlpha { get; set; }
        /// <summary>CutMix α; 0 disables cutmix.</summary>
        public double CutmixAlpha { get; set; }
        /// <summary>
        /// RandAugment magnitude, 0–10 (0 disables), applied with the crops when <see cref="BeitTrainerOptions.Augment"/>
        /// is on: two random ops per image from timm's increasing set, each with probability ½, magnitude ~ N(m, 0.5).
        /// Unset: the BEiT recipe's 9 for colour images, 0 for grey ones (whose classes hang on fine detail).
        /// </summary>
        public double RandAugmentMagnitude { get => ExplicitRandAugmentMagnitude ?? 0; set => ExplicitRandAugmentMagnitude = value; }
        /// <summary>
        /// Probability of replacing a random box of each training image with noise (random erasing) when
        /// <see cref="BeitTrainerOptions.Augment"/> is on. Unset: the BEiT recipe's 0.25 for colour images, 0 for grey ones.
        /// </summary>
        public double RandomErasingProbability { get => ExplicitRandomErasingProbability ?? 0; set => ExplicitRandomErasingProbability = value; }
        /// <summary>
        /// Train on the images' luminance only: every channel gets the luma of the colour image while training, and the
        /// conversion is folded into the patch projection afterwards, so the model (and <c>model.zip</c>) takes colour
        /// images as usual and ignores their colour. Unset: on for a new model on fewer than 1,000 colour images, where the
        /// search also tries colour and keeps it when it validates better; off otherwise.
        /// </summary>
        public bool LuminanceOnly { get => ExplicitLuminanceOnly ?? false; set => ExplicitLuminanceOnly = value; }
        /// <summary>Multiplier of a newly initialised classifier head on a pre-trained backbone (the recipe's 0.001).</summary>
        public double HeadInitScale { get; set; } = 0.001;

        // Set by the search for its final run: the weights the winning trial ended with (loaded after any checkpoint).
        internal Dictionary<string, Checkpoints.TensorData>? InitialWeights;
        internal double? ExplicitRandAugmentMagnitude, ExplicitRandomErasingProbability;
        internal bool? ExplicitLuminanceOnly;

        internal override void Validate()
        {
            base.Validate();
            if (LabelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), "must be in [0, 1).");
            if (RandAugmentMagnitude is < 0 or > 10) throw new ArgumentOutOfRangeException(nameof(RandAugmentMagnitude), "must be in [0, 10].");
            if (RandomErasingProbability is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(RandomErasingProbability), "must be in [0, 1].");
            if (MixupAlpha < 0 || CutmixAlpha < 0) throw new ArgumentOutOfRangeException(nameof(MixupAlpha), "mixup and cutmix alphas must be >= 0.");
        }
    }
}
