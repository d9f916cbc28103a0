using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>
/// Training-time augmentation on image batches <c>[B, C, H, W]</c> (and, for segmentation, label maps
/// <c>[B, H, W]</c> that follow the same geometry): random resized crop, horizontal flip, mixup and cutmix.
/// Every random draw comes from the caller's <see cref="Random"/>, so a seed reproduces a run.
/// </summary>
public static class BatchAugmentation
{
    /// <summary>Settings of <see cref="RandomResizedCropAndFlip"/> (torchvision's defaults).</summary>
    /// <param name="MinScale">Smallest crop area as a fraction of the image.</param>
    /// <param name="MaxScale">Largest crop area fraction.</param>
    /// <param name="MinRatio">Smallest crop aspect ratio (width / height).</param>
    /// <param name="MaxRatio">Largest crop aspect ratio.</param>
    public sealed record CropSettings(double MinScale = 0.08, double MaxScale = 1.0, double MinRatio = 3.0 / 4, double MaxRatio = 4.0 / 3);

    /// <summary>A crop box drawn as torchvision's <c>RandomResizedCrop.get_params</c> does (10 tries, then a central fallback).</summary>
    public static (int Top, int Left, int Height, int Width) SampleCrop(int height, int width, CropSettings s, Random rng)
    {
        double area = (double)height * width;
        double logLo = Math.Log(s.MinRatio), logHi = Math.Log(s.MaxRatio);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (s.MinScale + (s.MaxScale - s.MinScale) * rng.NextDouble());
            double ratio = Math.Exp(logLo + (logHi - logLo) * rng.NextDouble());
            int w = (int)Math.Round(Math.Sqrt(target * ratio));
            int h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w > 0 && h > 0 && w <= width && h <= height)
                return (rng.Next(height - h + 1), rng.Next(width - w + 1), h, w);
        }
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < s.MinRatio) { cw = width; ch = (int)Math.Round(cw / s.MinRatio); }
        else if (inRatio > s.MaxRatio) { ch = height; cw = (int)Math.Round(ch * s.MaxRatio); }
        else { cw = width; ch = height; }
        return ((height - ch) / 2, (width - cw) / 2, ch, cw);
    }

    /// <summary>
    /// Crops each image to its own random box and resizes it to <paramref name="outHeight"/>×<paramref name="outWidth"/>
    /// (bicubic with antialias for images, nearest for label maps), then flips each with probability
    /// <paramref name="flipProbability"/>.
    /// </summary>
    public static (Tensor Images, Tensor? Labels) RandomResizedCropAndFlip(Tensor images, Tensor? labels, int outHeight, int outWidth,
        CropSettings settings, double flipProbability, Random rng)
    {
        using var scope = NewDisposeScope();
        long b = images.shape[0];
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var outImages = new List<Tensor>((int)b);
        var outLabels = labels is null ? null : new List<Tensor>((int)b);
        for (int i = 0; i < b; i++)
        {
            var (top, left, ch, cw) = SampleCrop(h, w, settings, rng);
            bool flip = rng.NextDouble() < flipProbability;
            var img = images[i..(i + 1), .., top..(top + ch), left..(left + cw)];
            img = nn.functional.interpolate(img, [outHeight, outWidth], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
            if (flip) img = img.flip(3);
            outImages.Add(img);
            if (labels is not null)
            {
                var lab = labels[i..(i + 1), top..(top + ch), left..(left + cw)].unsqueeze(1).to(float32);
                lab = nn.functional.interpolate(lab, [outHeight, outWidth], mode: InterpolationMode.Nearest).squeeze(1).to(labels.dtype);
                if (flip) lab = lab.flip(2);
                outLabels!.Add(lab);
            }
        }
        var resultImages = cat(outImages, 0).clamp(images.min(), images.max()).MoveToOuterDisposeScope();
        var resultLabels = outLabels is null ? null : cat(outLabels, 0).MoveToOuterDisposeScope();
        return (resultImages, resultLabels);
    }

    /// <summary>The images resized to <paramref name="size"/>×<paramref name="size"/> (bicubic with antialias), or the same tensor when they already are.</summary>
    public static Tensor ResizeTo(Tensor images, int size) =>
        images.shape[2] == size && images.shape[3] == size ? images
            : nn.functional.interpolate(images, [size, size], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);

    /// <summary>
    /// The training view of a batch: a random resized crop and flip when <see cref="BeitTrainerOptions.Augment"/> is
    /// on, else a plain resize to the model's side (label maps follow, resized nearest).
    /// </summary>
    public static (Tensor Images, Tensor? Labels) TrainingView(Tensor images, Tensor? labels, int size, BeitTrainerOptions options, Random rng)
    {
        if (options.Augment)
            return RandomResizedCropAndFlip(images, labels, size, size, new CropSettings(options.RandomCropMinScale), options.HorizontalFlip ? 0.5 : 0, rng);
        if (labels is not null && (labels.shape[1] != size || labels.shape[2] != size))
            labels = nn.functional.interpolate(labels.unsqueeze(1).to(float32), [size, size], mode: InterpolationMode.Nearest).squeeze(1).to(labels.dtype);
        return (ResizeTo(images, size), labels);
    }

    /// <summary>Soft targets <c>[B, K]</c> from class ids, with label smoothing ε spread evenly over all classes.</summary>
    public static Tensor SoftTargets(Tensor labels, int numClasses, double smoothing)
    {
        using var scope = NewDisposeScope();
        var oneHot = nn.functional.one_hot(labels, numClasses).to(float32);
        return (oneHot * (1 - smoothing) + smoothing / numClasses).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mixup (probability 1 − <paramref name="cutmixProbability"/>) or CutMix of a batch with its reverse, with
    /// λ ~ Beta(α, α); returns mixed images and mixed soft targets.
    /// </summary>
    public static (Tensor Images, Tensor Targets) MixupOrCutmix(Tensor images, Tensor softTargets, double mixupAlpha, double cutmixAlpha,
        double cutmixProbability, Random rng)
    {
        using var scope = NewDisposeScope();
        bool cutmix = cutmixAlpha > 0 && (mixupAlpha <= 0 || rng.NextDouble() < cutmixProbability);
        double alpha = cutmix ? cutmixAlpha : mixupAlpha;
        if (alpha <= 0) return (images.alias().MoveToOuterDisposeScope(), softTargets.alias().MoveToOuterDisposeScope());
        double lam = SampleBeta(alpha, rng);
        var flippedImages = images.flip(0);
        var flippedTargets = softTargets.flip(0);
        Tensor mixed;
        if (cutmix)
        {
            int h = (int)images.shape[2], w = (int)images.shape[3];
            double cut = Math.Sqrt(1 - lam);
            int ch = (int)(h * cut), cw = (int)(w * cut);
            int cy = rng.Next(h), cx = rng.Next(w);
            int y0 = Math.Clamp(cy - ch / 2, 0, h), y1 = Math.Clamp(cy + ch / 2, 0, h);
            int x0 = Math.Clamp(cx - cw / 2, 0, w), x1 = Math.Clamp(cx + cw / 2, 0, w);
            mixed = images.clone();
            mixed[.., .., y0..y1, x0..x1] = flippedImages[.., .., y0..y1, x0..x1];
            lam = 1 - (double)(y1 - y0) * (x1 - x0) / (h * w); // the area actually pasted
        }
        else
        {
            mixed = images * lam + flippedImages * (1 - lam);
        }
        var targets = softTargets * lam + flippedTargets * (1 - lam);
        return (mixed.MoveToOuterDisposeScope(), targets.MoveToOuterDisposeScope());
    }

    // Beta(α, α) from two Gamma(α) draws (Marsaglia–Tsang, with the α < 1 boost).
    private static double SampleBeta(double alpha, Random rng)
    {
        double x = SampleGamma(alpha, rng), y = SampleGamma(alpha, rng);
        return x + y == 0 ? 0.5 : x / (x + y);
    }

    private static double SampleGamma(double alpha, Random rng)
    {
        if (alpha < 1) return SampleGamma(alpha + 1, rng) * Math.Pow(rng.NextDouble(), 1 / alpha);
        double d = alpha - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
                x = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            double u = rng.NextDouble();
            if (u < 1 - 0.0331 * x * x * x * x || Math.Log(u) < 0.5 * x * x + d * (1 - v + Math.Log(v))) return d * v;
        }
    }
}
