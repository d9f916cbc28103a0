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
        /// <summary>Multiplier of a newly initialised classifier head on a pre-trained backbone (the recipe's 0.001).</summary>
        public double HeadInitScale { get; set; } = 0.001;

        // Set by the search for its final run: the weights the winning trial ended with (loaded after any checkpoint).
        internal Dictionary<string, Checkpoints.TensorData>? InitialWeights;

        internal override void Validate()
        {
            base.Validate();
            if (LabelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), "must be in [0, 1).");
            if (MixupAlpha < 0 || CutmixAlpha < 0) throw new ArgumentOutOfRangeException(nameof(MixupAlpha), "mixup and cutmix alphas must be >= 0.");
        }
    }
}
