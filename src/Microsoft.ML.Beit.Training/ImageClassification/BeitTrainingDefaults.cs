using System.Globalization;

namespace Microsoft.ML.Beit.Training.ImageClassification;

/// <summary>
/// The classification trainer's automatic settings: what it picks from the data (image size, grey or colour, number
/// of images and classes) and the machine (native bf16?) for every option the user left unset. Explicit values win.
/// A pure function of its inputs, so each rule is unit-tested; the reasons go to the log and the report.
/// </summary>
internal static class BeitTrainingDefaults
{
    /// <summary>What the defaults look at in the training data.</summary>
    /// <param name="Count">Training images (before the validation split).</param>
    /// <param name="Height">Image height in pixels.</param>
    /// <param name="Width">Image width in pixels.</param>
    /// <param name="Grey">All three channels equal in every image looked at.</param>
    /// <param name="Classes">Number of classes.</param>
    public sealed record DataStats(int Count, int Height, int Width, bool Grey, int Classes)
    {
        // Enough images to tell grey from colour without scanning a large data set.
        private const int GreyProbeImages = 256;

        /// <summary>Statistics of <paramref name="images"/>: grey when R = G = B in every pixel of the first 256 images.</summary>
        public static DataStats Of(BeitTrainingImages images)
        {
            int plane = checked(images.Height * images.Width);
            var pixels = images.Pixels.AsSpan();
            bool grey = true;
            for (int i = 0; i < Math.Min(images.Count, GreyProbeImages) && grey; i++)
            {
                var image = pixels.Slice(checked(i * 3 * plane), 3 * plane);
                grey = image[..plane].SequenceEqual(image.Slice(plane, plane)) && image[..plane].SequenceEqual(image.Slice(2 * plane, plane));
            }
            return new DataStats(images.Count, images.Height, images.Width, grey, images.ClassNames.Count);
        }
    }

    /// <summary>The resolved settings of a run and why each automatic one was chosen.</summary>
    public sealed record Choice(int Epochs, int BatchSize, double LearningRate, double WarmupEpochs, double LayerDecay, double DropPathRate,
        bool Augment, double RandomCropMinScale, double RandAugmentMagnitude, double RandomErasingProbability, bool LuminanceOnly, double ValidationFraction, bool Bf16Autocast,
        IReadOnlyList<string> Reasons, string? Warning);

    // The measured recipe: 15 epochs of the 3,000-image bundled Fashion-MNIST subset reached 72.1 %; 10 epochs of the
    // full 60,000 reached 88.6 % in under 15 minutes (README), which sets the lower bound from scratch.
    // Below this many colour images a new model trains on their luminance (Choose).
    internal const int FewColourImages = 1000;
    private const int ReferenceImages = 3000, ReferenceEpochs = 15, MinScratchEpochs = 10, MaxScratchEpochs = 30;

    /// <summary>
    /// Every setting of a run: the explicit ones from <paramref name="options"/>, the rest chosen from
    /// <paramref name="data"/> and <paramref name="cpu"/>.
    /// </summary>
    public static Choice Choose(DataStats data, CpuFeatures cpu, BeitImageClassificationTrainer.Options options)
    {
        var o = options;
        var reasons = new List<string>();
        bool checkpoint = o.CheckpointFolder is not null;
        int side = o.ImageSize ?? Math.Min(data.Height, data.Width);
        bool tinyGrey = data.Grey && Math.Min(data.Height, data.Width) <= 32;
        string what = string.Create(CultureInfo.InvariantCulture,
            $"{data.Count:N0} {data.Height}×{data.Width} {(data.Grey ? "grey" : "colour")} images, {data.Classes} classes");

        T Pick<T>(T? explicitValue, string name, T automatic, string why) where T : struct
        {
            if (explicitValue is T v) return v;
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {automatic}: {why}"));
            return automatic;
        }

        double validation = Pick(o.ExplicitValidationFraction, "validation fraction", data.Count >= 1000 ? 0.05 : 0.1,
            data.Count >= 1000 ? "5 % is enough to pick the best epoch from ≥ 1,000 images" : "10 % keeps a usable validation set on few images");
        int trainCount = (int)Math.Max(1, data.Count * (1 - validation));

        // Batch: small batches on little data, where a budget of minutes allows many epochs and steps are what count: on
        // 2,000 Fashion-MNIST images batch 32 (more, noisier steps) beat batch 128 at the same time budget (73.7 % against
        // 70.1 % in 3 minutes) although it steps through 25 % fewer images per second. From 20,000 images an epoch has
        // steps to spare and the budget allows only a few epochs, so batch 128 looks at more images per second. At
        // least ~8 steps per epoch.
        bool many = data.Count >= 20000;
        int batch0 = many && !checkpoint ? 128 : 32;
        while (batch0 > 16 && batch0 * 8 > trainCount) batch0 /= 2;
        int batch = Pick(o.ExplicitBatchSize, "batch size", batch0, checkpoint ? "fine-tuning a checkpoint-sized model"
            : many ? "a few epochs of many images: more images per second" : "many small steps learn faster from scratch than few large ones, ≥ 8 steps per epoch");

        // Epochs: the measured recipe's 15 epochs of 3,000 images, fewer (∝ 1/√n) as data grows; fine-tuning needs a third.
        int scratchEpochs = Math.Clamp((int)Math.Round(ReferenceEpochs * Math.Sqrt((double)ReferenceImages / Math.Max(1, data.Count))), MinScratchEpochs, MaxScratchEpochs);
        int epochs = Pick(o.ExplicitEpochs, "epochs", checkpoint ? Math.Clamp(scratchEpochs / 3, 3, 15) : scratchEpochs,
            checkpoint ? "a pre-trained backbone converges in a few epochs" : $"{ReferenceEpochs} epochs at {ReferenceImages:N0} images, ∝ 1/√images, within [{MinScratchEpochs}, {MaxScratchEpochs}]");

        // Learning rate: from scratch 1e-3 at batch 32 (measured best on Fashion-MNIST), scaled with √batch as for Adam
        // (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"); fine-tuning 5e-4 per
        // 256 images, half the BEiT recipe's 1e-3 per 256 (4e-3 at batch 1024), because short runs on small data have
        // little time to recover from a disturbed backbone.
        double lr = Pick(o.ExplicitLearningRate, "learning rate", checkpoint ? 5e-4 * batch / 256 : 1e-3 * Math.Sqrt(batch / 32.0),
            checkpoint ? "5e-4 × batch / 256 (fine-tuning)" : "1e-3 × √(batch / 32) (from scratch)");
        // Warm-up: the BEiT fine-tuning recipe warms up for a fifth of the run (20 of 100 epochs); from scratch a short
        // 0.2-epoch warm-up measured best on small data.
        double warmup = Pick(o.ExplicitWarmupEpochs, "warm-up epochs", checkpoint ? Math.Round(0.2 * epochs, 2) : 0.2,
            checkpoint ? "a fifth of the run, as the BEiT recipe's 20 of 100 epochs" : "short warm-up for a new model");
        double layerDecay = Pick(o.ExplicitLayerDecay, "layer decay", checkpoint ? 0.65 : 1.0,
            checkpoint ? "the BEiT recipe's 0.65 keeps pre-trained lower layers close" : "a new model has no pre-trained layers to protect");
        double dropPath = Pick(o.ExplicitDropPathRate, "drop path", checkpoint ? 0.1 : 0.05,
            checkpoint ? "the BEiT recipe's 0.1" : "a small model regularised lightly");

        // Augmentation: crops + flips wherever a run sees each image many times (Fashion-MNIST 2,000: 73.7 % with mild
        // crops against 70.8 % without in 3 minutes). Tiny grey images (digits, clothing) get mild crops (at least 64 % of
        // the area), since strong ones remove the detail that separates classes, and none from 20,000 images on, where a
        // budget of minutes allows a few epochs and the data itself regularises; larger images get torchvision's 0.08 on
        // plenty of data and 0.35 on little.
        bool augment = Pick(o.ExplicitAugment, "augmentation", !(tinyGrey && many),
            tinyGrey && many ? "a few epochs of many tiny images need no extra regularisation" : "crops + flips regularise a model that sees each image many times");
        double minScale = Pick(o.ExplicitRandomCropMinScale, "smallest crop", tinyGrey ? 0.64 : many ? 0.08 : 0.35,
            tinyGrey ? "mild crops keep the detail of tiny grey images" : many ? "torchvision's 0.08 on plenty of data" : "milder crops on little data");

        // Luminance only for a new model on few colour images: with colour, a ViT from scratch memorised 300 coloured
        // shapes by their colours (97 % on its training images, 35–47 % on new ones, however augmented) and learnt the
        // shapes from the same images' luminance (67 % in 2.5 minutes). The search also tries colour, and keeps it when
        // it validates better (colour that carries the class).
        bool luminance = Pick(o.ExplicitLuminanceOnly, "luminance only", !data.Grey && !checkpoint && data.Count < FewColourImages,
            data.Grey ? "grey images" : checkpoint ? "a pre-trained model keeps its colour input"
            : data.Count < FewColourImages ? $"a new model on fewer than {FewColourImages:N0} colour images learns shapes, not colours; the search also tries colour"
            : $"{FewColourImages:N0} or more colour images");

        // RandAugment and random erasing (the BEiT fine-tuning recipe) for colour input. Grey input (grey images, or
        // luminance only) keeps the crops alone: on 360 shapes trained on their luminance for 165 s they cost 15 points
        // (32.2 % against 46.7 %, 86–89 epochs), and the Fashion-MNIST defaults were measured without them.
        bool colourInput = !data.Grey && !luminance;
        double randAugment = Pick(o.ExplicitRandAugmentMagnitude, "RandAugment magnitude", colourInput ? 9.0 : 0.0,
            colourInput ? "the BEiT recipe's rand-m9-mstd0.5-inc1 for colour input" : "off for grey input: crops and flips alone");
        double erasing = Pick(o.ExplicitRandomErasingProbability, "random erasing", colourInput ? 0.25 : 0.0,
            colourInput ? "the BEiT recipe's 0.25 for colour input" : "off for grey input");

        // bf16 autocast only where the CPU multiplies bf16 natively: libtorch emulates it elsewhere (15–40× slower).
        bool onCpu = o.Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase);
        bool bf16 = Pick(o.ExplicitBf16Autocast, "bf16 autocast", onCpu && cpu.HasNativeBf16,
            onCpu ? $"{cpu.Describe()}" : "float32 off the CPU unless asked");
        string? warning = o.ExplicitBf16Autocast == true ? Bf16Warning(o, cpu) : null;
        reasons.Insert(0, (checkpoint ? "fine-tuning " : "from scratch, ") + what);
        return new Choice(epochs, batch, lr, warmup, layerDecay, dropPath, augment, minScale, randAugment, erasing, luminance, validation, bf16, reasons, warning);
    }

    /// <summary>
    /// The warning for bf16 autocast on a CPU that emulates bf16, or null. Every trainer warns and proceeds rather than
    /// refusing: the result is correct, only slower, and a user who asks explicitly may know better (a newer libtorch,
    /// a short test).
    /// </summary>
    public static string? Bf16Warning(BeitTrainerOptions o, CpuFeatures cpu) =>
        o.Bf16Autocast && o.Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase) && !cpu.HasNativeBf16
            ? $"bf16 autocast was requested but this CPU has no native bf16 ({cpu.Describe()}): libtorch emulates it, which measured 15–40× slower than float32. Training proceeds; drop the bf16 setting to train in float32."
            : null;

    /// <summary>A copy of <paramref name="options"/> carrying every setting of <paramref name="choice"/>.</summary>
    public static BeitImageClassificationTrainer.Options Apply(BeitImageClassificationTrainer.Options options, Choice choice)
    {
        var r = (BeitImageClassificationTrainer.Options)options.CloneOptions();
        r.RandAugmentMagnitude = choice.RandAugmentMagnitude;
        r.RandomErasingProbability = choice.RandomErasingProbability;
        r.LuminanceOnly = choice.LuminanceOnly;
        r.Epochs = choice.Epochs;
        r.BatchSize = choice.BatchSize;
        r.LearningRate = choice.LearningRate;
        r.WarmupEpochs = choice.WarmupEpochs;
        r.LayerDecay = choice.LayerDecay;
        r.DropPathRate = choice.DropPathRate;
        r.Augment = choice.Augment;
        r.RandomCropMinScale = choice.RandomCropMinScale;
        r.ValidationFraction = choice.ValidationFraction;
        r.Bf16Autocast = choice.Bf16Autocast;
        return r;
    }

    /// <summary>
    /// A from-scratch configuration for <paramref name="side"/>-pixel inputs: patch size giving a 7×7 to 14×14 grid,
    /// and a width that trains in minutes on a few CPU cores.
    /// </summary>
    public static BeitConfig Config(int side, double dropPathRate)
    {
        int patch = side <= 32 ? 4 : side <= 64 ? 8 : 16;
        // Measured on a 2-core CPU with bf16 autocast at 28×28: 4 layers of width 128 (two 64-wide heads) train at
        // about 700 img/s and reached a better 15-minute Fashion-MNIST accuracy than 6 layers (more epochs beat depth).
        return new BeitConfig
        {
            ImageSize = side,
            PatchSize = patch,
            HiddenSize = 128,
            NumHiddenLayers = side <= 32 ? 4 : 6,
            NumAttentionHeads = 2,
            IntermediateSize = 256,
            UseRelativePositionBias = true,
            UseMeanPooling = true,
            LayerScaleInitValue = 0.1,
            DropPathRate = dropPathRate,
            LayerNormEps = 1e-6,
        };
    }
}
