using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>
/// The BEiT fine-tuning recipe's photometric and geometric augmentation, on whole batches on the training device:
/// RandAugment <c>rand-m9-mstd0.5-inc1</c> (Cubuk et al. 2019, "RandAugment"; the op set and "increasing" magnitudes of
/// timm's <c>auto_augment.py</c>, which BEiT's <c>run_class_finetuning.py</c> uses) and random erasing (Zhong et al.
/// 2017, "Random Erasing Data Augmentation"; per-pixel normal noise).
/// </summary>
/// <remarks>
/// Each image takes <see cref="Layers"/> draws; each draw picks one of the 15 ops uniformly and applies it with
/// probability ½ at a magnitude drawn from N(m, 0.5) clipped to [0, 10] (10 = strongest). The geometric ops (rotate,
/// shear, translate) compose with the image's random resized crop into one affine map, so a batch is resampled once
/// (<see cref="BatchAugmentation.CropResizeFlip"/>) and pixels moved in from outside the image take the model's mean
/// colour; the photometric ops then follow in draw order on float pixels in [0, 1]. Pillow applies them to 8-bit
/// images one after another, so values differ by rounding, which does not matter for augmentation; and shears pivot
/// on the image centre (as torchvision's) where timm's Pillow shear pivots on the top-left corner, a translation apart.
/// </remarks>
internal static class RandAugment
{
    /// <summary>The ops of timm's <c>_RAND_INCREASING_TRANSFORMS</c>.</summary>
    internal enum Op { AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY }

    /// <summary>Ops per image (RandAugment's N).</summary>
    public const int Layers = 2;
    private const double ApplyProbability = 0.5, MagnitudeStd = 0.5, MaxLevel = 10;
    private static readonly int OpCount = Enum.GetValues<Op>().Length;

    /// <summary>One op applied to one image: its level in [0, 10] and, for signed ops, the direction.</summary>
    internal readonly record struct Draw(Op Op, double Level, bool Negate)
    {
        /// <summary>True for the ops that move pixels (folded into the crop's affine map).</summary>
        public bool Geometric => Op is Op.Rotate or Op.ShearX or Op.ShearY or Op.TranslateX or Op.TranslateY;

        // Signed enhancement factor 1 ± 0.9·level/10 (timm's _enhance_increasing_level).
        public double Factor => 1 + (Negate ? -1 : 1) * 0.9 * Level / MaxLevel;
    }

    /// <summary>The ops each of <paramref name="batch"/> images gets (skipped draws left out), in application order.</summary>
    public static Draw[][] Sample(int batch, double magnitude, Random rng)
    {
        var draws = new Draw[batch][];
        var list = new List<Draw>(Layers);
        for (int i = 0; i < batch; i++)
        {
            list.Clear();
            for (int l = 0; l < Layers; l++)
            {
                var op = (Op)rng.Next(OpCount);
                bool apply = rng.NextDouble() < ApplyProbability;
                double level = Math.Clamp(magnitude + MagnitudeStd * Gaussian(rng), 0, MaxLevel);
                bool negate = rng.NextDouble() < 0.5;
                if (apply) list.Add(new Draw(op, level, negate));
            }
            draws[i] = list.ToArray();
        }
        return draws;
    }

    /// <summary>
    /// The row-major 2×3 map from output to input coordinates (normalised to [−1, 1], square images) of the
    /// geometric ops in <paramref name="draws"/>, applied in order; the identity when there are none.
    /// </summary>
    public static double[] Geometry(IEnumerable<Draw> draws)
    {
        // The image after op k samples the image before it at G_k(p); the whole chain samples the input at G_1(…G_n(p)).
        double[] m = [1, 0, 0, 0, 1, 0];
        foreach (var d in draws.Where(d => d.Geometric))
        {
            double s = (d.Negate ? -1 : 1) * d.Level / MaxLevel;
            double[] g = d.Op switch
            {
                Op.Rotate => Rotation(s * 30 * Math.PI / 180),
                Op.ShearX => [1, s * 0.3, 0, 0, 1, 0],
                Op.ShearY => [1, 0, 0, s * 0.3, 1, 0],
                Op.TranslateX => [1, 0, 2 * s * 0.45, 0, 1, 0], // 45 % of the side; [−1, 1] spans 2
                _ => [1, 0, 0, 0, 1, 2 * s * 0.45],
            };
            m = Compose(m, g);
        }
        return m;
    }

    private static double[] Rotation(double angle) => [Math.Cos(angle), -Math.Sin(angle), 0, Math.Sin(angle), Math.Cos(angle), 0];

    /// <summary>The affine map <c>x ↦ a(b(x))</c> of two row-major 2×3 maps.</summary>
    internal static double[] Compose(double[] a, double[] b) =>
    [
        a[0] * b[0] + a[1] * b[3], a[0] * b[1] + a[1] * b[4], a[0] * b[2] + a[1] * b[5] + a[2],
        a[3] * b[0] + a[4] * b[3], a[3] * b[1] + a[4] * b[4], a[3] * b[2] + a[4] * b[5] + a[5],
    ];

    /// <summary>
    /// The photometric ops of <paramref name="draws"/> applied, in each image's draw order, to <paramref name="images"/>
    /// (<c>[B, 3, H, W]</c>, values in [0, 1]); images are grouped by op so each op runs once per layer over its images.
    /// </summary>
    public static Tensor Photometric(Tensor images, Draw[][] draws)
    {
        using var scope = NewDisposeScope();
        var x = images.alias();
        var colour = draws.Select(d => d.Where(op => !op.Geometric).ToArray()).ToArray();
        int layers = colour.Length == 0 ? 0 : colour.Max(d => d.Length);
        for (int l = 0; l < layers; l++)
        {
            foreach (var group in Enumerable.Range(0, colour.Length).Where(i => colour[i].Length > l).GroupBy(i => colour[i][l].Op))
            {
                var members = group.ToArray();
                using var index = tensor(members.Select(i => (long)i).ToArray(), device: x.device);
                var sub = x.index_select(0, index);
                var levels = members.Select(i => colour[i][l]).ToArray();
                x = x.index_copy(0, index, Apply(group.Key, sub, levels).clamp(0, 1));
            }
        }
        return x.MoveToOuterDisposeScope();
    }

    // One photometric op on the images of one group, each at its own level (timm's *Increasing level functions).
    private static Tensor Apply(Op op, Tensor x, Draw[] draws)
    {
        Tensor PerImage(Func<Draw, double> value) =>
            tensor(draws.Select(d => (float)value(d)).ToArray(), device: x.device).view(-1, 1, 1, 1).to(x.dtype);
        switch (op)
        {
            case Op.AutoContrast:
            {
                // Each channel stretched to the full range (Pillow's autocontrast, no cutoff); flat channels unchanged.
                var lo = x.amin([2, 3], keepdim: true);
                var hi = x.amax([2, 3], keepdim: true);
                var range = hi - lo;
                return where(range > 1e-6, (x - lo) / range.clamp_min(1e-6), x);
            }
            case Op.Equalize:
                return Equalize(x);
            case Op.Invert:
                return 1 - x;
            case Op.Posterize:
            {
                // Keep 4 − ⌊4·level/10⌋ bits of each 8-bit value (0 bits: black, as Pillow's posterize).
                var step = PerImage(d => Math.Pow(2, 8 - (4 - (int)(d.Level / MaxLevel * 4))));
                return (x * 255).round().div(step).floor().mul(step).div(255);
            }
            case Op.Solarize:
            {
                // Invert values at or above 256 − ⌊256·level/10⌋.
                var threshold = PerImage(d => 256 - (int)(d.Level / MaxLevel * 256));
                return where((x * 255).round() >= threshold, 1 - x, x);
            }
            case Op.SolarizeAdd:
            {
                // Add ⌊110·level/10⌋ to values below 128.
                var add = PerImage(d => (int)(d.Level / MaxLevel * 110) / 255.0);
                return where((x * 255).round() < 128, x + add, x);
            }
            case Op.Color:
            {
                var grey = Luma(x);
                return grey + PerImage(d => d.Factor) * (x - grey);
            }
            case Op.Contrast:
            {
                // Blend with the image's mean luma (Pillow's ImageEnhance.Contrast).
                var mean = Luma(x).mean([2, 3], keepdim: true);
                return mean + PerImage(d => d.Factor) * (x - mean);
            }
            case Op.Brightness:
                return x * PerImage(d => d.Factor);
            case Op.Sharpness:
            {
                // Blend with Pillow's SMOOTH filter ([1 1 1; 1 5 1; 1 1 1] / 13), whose border pixels stay unfiltered.
                int c = (int)x.shape[1];
                var kernel = tensor(new float[] { 1, 1, 1, 1, 5, 1, 1, 1, 1 }, device: x.device).div(13).view(1, 1, 3, 3).expand(c, 1, 3, 3).to(x.dtype);
                var inner = nn.functional.conv2d(x, kernel, groups: c);
                var smooth = x.clone();
                smooth[.., .., 1..^1, 1..^1] = inner;
                return smooth + PerImage(d => d.Factor) * (x - smooth);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "not a photometric op");
        }
    }

    // ITU-R 601-2 luma, as Pillow's convert("L"), broadcast over the channels.
    private static Tensor Luma(Tensor x) =>
        x[.., 0..1] * BeitTrainingImages.Luma[0] + x[.., 1..2] * BeitTrainingImages.Luma[1] + x[.., 2..3] * BeitTrainingImages.Luma[2];

    /// <summary>
    /// Pillow's <c>ImageOps.equalize</c> per image and channel on 8-bit values: the lookup table
    /// <c>(⌊step/2⌋ + count below v) / step</c> with <c>step = ⌊(pixels − count of the highest value) / 255⌋</c>, the
    /// identity where step is 0 (flat channels).
    /// </summary>
    internal static Tensor Equalize(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var q = (x * 255).round().clamp(0, 255).to(int64).view(b * c, h * w);
        var offsets = arange(b * c, dtype: int64, device: x.device).mul(256).unsqueeze(1);
        var hist = (q + offsets).flatten().bincount(null, b * c * 256).view(b * c, 256);
        var present = hist > 0;
        var last = 255 - present.flip(1).to(int64).argmax(1, keepdim: true); // the highest value present
        var step = (hist.sum(1, keepdim: true) - hist.gather(1, last)).div(255, rounding_mode: RoundingMode.floor);
        var below = hist.cumsum(1) - hist; // pixels with a smaller value
        var lut = (step.div(2, rounding_mode: RoundingMode.floor) + below).div(step.clamp_min(1), rounding_mode: RoundingMode.floor).clamp_max(255);
        lut = where(step > 0, lut, arange(256, dtype: int64, device: x.device).unsqueeze(0));
        return lut.gather(1, q).view(b, c, h, w).to(x.dtype).div(255).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Random erasing on normalised images: with <paramref name="probability"/>, one box per image of 2–33 % of its area
    /// and aspect ratio 0.3–3.3 is replaced by N(0, 1) noise (timm's <c>RandomErasing</c>, mode "pixel", 10 tries).
    /// </summary>
    public static Tensor RandomErasing(Tensor images, double probability, Random rng)
    {
        if (probability <= 0) return images;
        int b = (int)images.shape[0], h = (int)images.shape[2], w = (int)images.shape[3];
        Tensor? result = null;
        for (int i = 0; i < b; i++)
        {
            if (rng.NextDouble() >= probability) continue;
            for (int attempt = 0; attempt < 10; attempt++)
            {
                double area = h * w * (0.02 + (1.0 / 3 - 0.02) * rng.NextDouble());
                double aspect = Math.Exp(Math.Log(0.3) + (Math.Log(1 / 0.3) - Math.Log(0.3)) * rng.NextDouble());
                int eh = (int)Math.Round(Math.Sqrt(area * aspect)), ew = (int)Math.Round(Math.Sqrt(area / aspect));
                if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
                int top = rng.Next(h - eh + 1), left = rng.Next(w - ew + 1);
                result ??= images.clone();
                using var noise = randn([images.shape[1], eh, ew], dtype: images.dtype, device: images.device);
                result[i, .., top..(top + eh), left..(left + ew)] = noise;
                break;
            }
        }
        return result ?? images;
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
