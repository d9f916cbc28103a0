using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Data;

/// <summary>
/// Training-time augmentation on image batches <c>[B, C, H, W]</c> (and, for segmentation, label maps
/// <c>[B, H, W]</c> that follow the same geometry): random resized crop, horizontal flip, mixup and cutmix.
/// Every random draw comes from the caller's <see cref="Random"/>, so a seed reproduces a run.
/// </summary>
internal static class BatchAugmentation
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
    /// Crops each image to its own random box (<see cref="SampleCrop"/>) and resizes it to
    /// <paramref name="outHeight"/>×<paramref name="outWidth"/>, flipping each horizontally with probability
    /// <paramref name="flipProbability"/>, in one <c>grid_sample</c> over the whole batch on the images' device.
    /// </summary>
    /// <remarks>
    /// Each sample's crop box and flip sign become an affine <c>theta</c> (<see cref="CropTheta"/>); one
    /// <c>affine_grid</c> + <c>grid_sample</c> (bilinear, <c>align_corners=False</c>, border padding) resamples every
    /// image, and label maps follow on the same grid with nearest sampling: a fixed handful of operations per batch
    /// instead of a per-image loop of antialiased bicubic <c>interpolate</c> calls (four operations per image). The
    /// output differs from that loop's: bilinear rather than bicubic, and no antialiasing when a crop is shrunk (crops are usually
    /// enlarged to the model's side, where antialiasing does nothing).
    /// </remarks>
    public static (Tensor Images, Tensor? Labels) RandomResizedCropAndFlip(Tensor images, Tensor? labels, int outHeight, int outWidth,
        CropSettings settings, double flipProbability, Random rng)
    {
        var (boxes, flips) = SampleBoxesAndFlips(images, settings, flipProbability, rng);
        return CropResizeFlip(images, labels, boxes, flips, outHeight, outWidth);
    }

    // One crop box and flip per image of the batch. Draw order (box, then flip, per image) is the one the per-image
    // implementation used, so seeds keep their meaning.
    private static ((int Top, int Left, int Height, int Width)[] Boxes, bool[] Flips) SampleBoxesAndFlips(Tensor images, CropSettings settings,
        double flipProbability, Random rng)
    {
        int b = checked((int)images.shape[0]);
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var boxes = new (int Top, int Left, int Height, int Width)[b];
        var flips = new bool[b];
        for (int i = 0; i < b; i++)
        {
            boxes[i] = SampleCrop(h, w, settings, rng);
            flips[i] = rng.NextDouble() < flipProbability;
        }
        return (boxes, flips);
    }

    /// <summary>
    /// Image <c>i</c> of the batch cropped to <c>boxes[i]</c>, resized to <paramref name="outHeight"/>×<paramref name="outWidth"/>
    /// and mirrored when <c>flips[i]</c>, all in one <c>grid_sample</c> (label maps: nearest on the same grid).
    /// </summary>
    /// <remarks>
    /// <paramref name="then"/> (one row-major 2×3 map per image, in the output's normalised coordinates) moves the
    /// cropped image further, for RandAugment's geometric ops; points it brings in from outside the image become 0,
    /// the mean colour of normalised images.
    /// </remarks>
    internal static (Tensor Images, Tensor? Labels) CropResizeFlip(Tensor images, Tensor? labels, (int Top, int Left, int Height, int Width)[] boxes,
        bool[] flips, int outHeight, int outWidth, IReadOnlyList<double[]>? then = null)
    {
        using var scope = NewDisposeScope();
        int b = checked((int)images.shape[0]);
        int h = (int)images.shape[2], w = (int)images.shape[3];
        if (boxes.Length != b || flips.Length != b || then is not null && then.Count != b)
            throw new ArgumentException($"Expected {b} crop boxes, flips and maps, got {boxes.Length}, {flips.Length} and {then?.Count}.");
        var theta = new float[checked(b * 6)];
        for (int i = 0; i < b; i++)
        {
            var crop = CropTheta(h, w, boxes[i], flips[i]);
            if (then is null) crop.CopyTo(theta, i * 6);
            else RandAugment.Compose(Array.ConvertAll(crop, v => (double)v), then[i]).Select(v => (float)v).ToArray().CopyTo(theta, i * 6);
        }
        long[] outShape = [b, images.shape[1], outHeight, outWidth];
        var grid = nn.functional.affine_grid(tensor(theta, [b, 2, 3]).to(images.device), outShape, align_corners: false).to(images.dtype);
        var resultImages = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
        if (then is not null)
        {
            // Border padding keeps crops that touch the image's edge clean; beyond half a pixel outside, the mean colour.
            var outside = (grid[.., .., .., 0].abs() > 1 + 1.0 / w).logical_or(grid[.., .., .., 1].abs() > 1 + 1.0 / h).unsqueeze(1);
            resultImages = resultImages.masked_fill(outside, 0);
        }
        Tensor? resultLabels = null;
        if (labels is not null)
        {
            var sampled = nn.functional.grid_sample(labels.unsqueeze(1).to(images.dtype), grid, GridSampleMode.Nearest, GridSamplePaddingMode.Border, align_corners: false);
            resultLabels = sampled.squeeze(1).round().to(labels.dtype).MoveToOuterDisposeScope();
        }
        return (resultImages.MoveToOuterDisposeScope(), resultLabels);
    }

    /// <summary>
    /// The affine map (row-major 2×3) from output coordinates to input coordinates, both normalised to [−1, 1] with
    /// <c>align_corners=False</c>, that samples the box <c>(top, left, height, width)</c> of an
    /// <paramref name="imageHeight"/>×<paramref name="imageWidth"/> image, mirrored left–right when <paramref name="flip"/>.
    /// </summary>
    /// <remarks>
    /// Output pixel j samples input x = left + (j + ½)·width / outWidth − ½ (PyTorch's <c>interpolate</c> with
    /// <c>align_corners=False</c>); in normalised coordinates, x_in = (width / W)·x_out + (2·left + width) / W − 1.
    /// A flip negates x_out. The identity box gives the identity map, so an uncropped, unflipped image comes back unchanged.
    /// </remarks>
    internal static float[] CropTheta(int imageHeight, int imageWidth, (int Top, int Left, int Height, int Width) box, bool flip)
    {
        double sx = (double)box.Width / imageWidth, sy = (double)box.Height / imageHeight;
        double tx = (2.0 * box.Left + box.Width) / imageWidth - 1, ty = (2.0 * box.Top + box.Height) / imageHeight - 1;
        return [(float)(flip ? -sx : sx), 0, (float)tx, 0, (float)sy, (float)ty];
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

    /// <summary>
    /// The classification training view: <see cref="TrainingView"/>, plus, when <see cref="BeitTrainerOptions.Augment"/>
    /// is on, RandAugment at <c>RandAugmentMagnitude</c> (its geometric ops in the crop's single resampling, its
    /// photometric ops on the un-normalised pixels) and random erasing (the BEiT fine-tuning recipe).
    /// </summary>
    public static Tensor ClassificationView(Tensor images, int size, ImageClassification.BeitImageClassificationTrainer.Options options,
        float[] mean, float[] std, Random rng)
    {
        if (!options.Augment) return TrainingView(images, null, size, options, rng).Images;
        if (options.RandAugmentMagnitude <= 0)
            return RandAugment.RandomErasing(TrainingView(images, null, size, options, rng).Images, options.RandomErasingProbability, rng);
        using var scope = NewDisposeScope();
        var (boxes, flips) = SampleBoxesAndFlips(images, new CropSettings(options.RandomCropMinScale), options.HorizontalFlip ? 0.5 : 0, rng);
        var draws = RandAugment.Sample(boxes.Length, options.RandAugmentMagnitude, rng);
        var x = CropResizeFlip(images, null, boxes, flips, size, size, draws.Select(RandAugment.Geometry).ToArray()).Images;
        var m = tensor(mean, [1, 3, 1, 1]).to(x.dtype).to(x.device);
        var s = tensor(std, [1, 3, 1, 1]).to(x.dtype).to(x.device);
        x = (RandAugment.Photometric(x * s + m, draws) - m) / s;
        return RandAugment.RandomErasing(x, options.RandomErasingProbability, rng).MoveToOuterDisposeScope();
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
