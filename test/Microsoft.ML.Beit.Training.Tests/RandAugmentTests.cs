using Microsoft.ML.Beit.Training;
using Microsoft.ML.Beit.Training.Data;
using Microsoft.ML.Beit.Training.ImageClassification;
using static TorchSharp.torch;
using Op = Microsoft.ML.Beit.Training.Data.RandAugment.Op;
using Draw = Microsoft.ML.Beit.Training.Data.RandAugment.Draw;

namespace Beit.Tests;

public class RandAugmentTests
{
    private static float MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    private static Tensor One(Tensor images, params Draw[] draws) => RandAugment.Photometric(images, [draws]);

    [Fact]
    public void DrawsFollowRandAugmentM9Std05TwoLayersHalfProbability()
    {
        var draws = RandAugment.Sample(20_000, 9, new Random(1));
        var all = draws.SelectMany(d => d).ToArray();
        // Two layers, each applied with probability ½: one op per image on average.
        Assert.InRange(all.Length / 20_000.0, 0.97, 1.03);
        Assert.All(draws, d => Assert.InRange(d.Length, 0, RandAugment.Layers));
        Assert.All(all, d => Assert.InRange(d.Level, 0, 10));
        Assert.InRange(all.Average(d => d.Level), 8.9, 9.05); // N(9, 0.5) clipped at 10
        Assert.Equal(Enum.GetValues<Op>().Length, all.Select(d => d.Op).Distinct().Count());
        Assert.InRange(all.Count(d => d.Negate) / (double)all.Length, 0.47, 0.53);
        Assert.All(RandAugment.Sample(100, 0, new Random(2)).SelectMany(d => d), d => Assert.InRange(d.Level, 0, 1.8));
    }

    [Fact]
    public void GeometryComposesRotationShearAndTranslationInDrawOrder()
    {
        Assert.Equal([1, 0, 0, 0, 1, 0], RandAugment.Geometry([new Draw(Op.Invert, 10, false)]));
        var rotate = RandAugment.Geometry([new Draw(Op.Rotate, 10, false)]);
        double c = Math.Cos(Math.PI / 6), s = Math.Sin(Math.PI / 6); // level 10: 30°
        Assert.Equal([c, -s, 0, s, c, 0], rotate, (a, b) => Math.Abs(a - b) < 1e-12);
        Assert.Equal([1, -0.15, 0, 0, 1, 0], RandAugment.Geometry([new Draw(Op.ShearX, 5, true)]), (a, b) => Math.Abs(a - b) < 1e-12);
        Assert.Equal([1, 0, 0, 0, 1, 0.9], RandAugment.Geometry([new Draw(Op.TranslateY, 10, false)]), (a, b) => Math.Abs(a - b) < 1e-12);
        // Translate then shear: the output point is sheared first (the later op), then translated.
        var chain = RandAugment.Geometry([new Draw(Op.TranslateX, 10, false), new Draw(Op.ShearX, 10, false)]);
        Assert.Equal([1, 0.3, 0.9, 0, 1, 0], chain, (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void ATranslationMovesPixelsAndFillsWhatComesFromOutsideWithTheMeanColour()
    {
        using var scope = NewDisposeScope();
        var images = rand(2, 3, 20, 20, generator: new Generator(4)) * 2 - 1;
        var full = (0, 0, 20, 20);
        // Level 10 moves by 45 % of the side, 9 of 20 pixels: output column j shows input column j + 9.
        var moved = BatchAugmentation.CropResizeFlip(images, null, [full, full], [false, false], 20, 20,
            [RandAugment.Geometry([new Draw(Op.TranslateX, 10, false)]), RandAugment.Geometry([])]).Images;
        Assert.True(MaxAbsDiff(moved[0, .., .., ..11], images[0, .., .., 9..]) < 1e-5);
        Assert.Equal(0f, moved[0, .., .., 12..].abs().max().item<float>());
        Assert.True(MaxAbsDiff(moved[1], images[1]) < 1e-5); // no geometric op: the crop alone
    }

    [Fact]
    public void PhotometricOpsMatchTheirDefinitions()
    {
        using var scope = NewDisposeScope();
        var x = rand(1, 3, 8, 8, generator: new Generator(7)).mul(255).round().div(255);
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Invert, 3, false)), 1 - x) < 1e-6);
        // Solarize: level 10 inverts everything; level 5 inverts values ≥ 128.
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Solarize, 10, false)), 1 - x) < 1e-6);
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Solarize, 5, false)), where(x * 255 >= 127.5, 1 - x, x)) < 1e-6);
        // Posterize: level 10 keeps 0 bits (black), level 5 keeps 2 bits (multiples of 64).
        Assert.Equal(0f, One(x, new Draw(Op.Posterize, 10, false)).abs().max().item<float>());
        var two = One(x, new Draw(Op.Posterize, 5, false)) * 255;
        Assert.True(MaxAbsDiff(two, (x * 255 / 64).floor() * 64) < 1e-3);
        // SolarizeAdd: +110 at level 10 below 128, clipped at 255.
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.SolarizeAdd, 10, false)), where(x * 255 < 127.5, (x + 110 / 255.0).clamp_max(1), x)) < 1e-6);
        // Enhancements: factor 1 ± 0.9 · level / 10.
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Brightness, 10, true)), x * 0.1) < 1e-6);
        var luma = x[.., 0..1] * 0.299 + x[.., 1..2] * 0.587 + x[.., 2..3] * 0.114;
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Color, 10, true)), luma + 0.1 * (x - luma)) < 1e-6);
        var mean = luma.mean();
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Contrast, 5, false)), (mean + 1.45 * (x - mean)).clamp(0, 1)) < 1e-6);
        // AutoContrast stretches every channel to [0, 1].
        var stretched = One(x * 0.5 + 0.2, new Draw(Op.AutoContrast, 0, false));
        Assert.True(MaxAbsDiff(stretched.amin([2, 3]), zeros(1, 3)) < 1e-6 && MaxAbsDiff(stretched.amax([2, 3]), ones(1, 3)) < 1e-6);
        var lo = x.amin([2, 3], keepdim: true);
        Assert.True(MaxAbsDiff(stretched, (x - lo) / (x.amax([2, 3], keepdim: true) - lo)) < 1e-5);
        // Sharpness: a flat image stays flat; border pixels are never filtered; level 0 changes nothing.
        Assert.True(MaxAbsDiff(One(full(1, 3, 8, 8, 0.3f), new Draw(Op.Sharpness, 10, false)), full(1, 3, 8, 8, 0.3f)) < 1e-6);
        var sharp = One(x, new Draw(Op.Sharpness, 10, true));
        Assert.True(MaxAbsDiff(sharp[.., .., 0], x[.., .., 0]) < 1e-6);
        Assert.True(MaxAbsDiff(sharp[.., .., 1..^1, 1..^1], x[.., .., 1..^1, 1..^1]) > 1e-3);
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Sharpness, 0, false)), x) < 1e-6);
    }

    [Fact]
    public void EachImageGetsItsOwnOpsInItsOwnOrder()
    {
        using var scope = NewDisposeScope();
        var x = rand(4, 3, 6, 6, generator: new Generator(8));
        var y = RandAugment.Photometric(x,
        [
            [new Draw(Op.Invert, 1, false), new Draw(Op.Invert, 1, false)],
            [new Draw(Op.Invert, 1, false)],
            [],
            [new Draw(Op.Brightness, 10, true), new Draw(Op.Invert, 1, false)],
        ]);
        Assert.True(MaxAbsDiff(y[0], x[0]) < 1e-6);
        Assert.True(MaxAbsDiff(y[1], 1 - x[1]) < 1e-6);
        Assert.True(MaxAbsDiff(y[2], x[2]) < 1e-6);
        Assert.True(MaxAbsDiff(y[3], 1 - 0.1 * x[3]) < 1e-6); // brightness first, then invert
        var reversed = RandAugment.Photometric(x[3..4], [[new Draw(Op.Invert, 1, false), new Draw(Op.Brightness, 10, true)]]);
        Assert.True(MaxAbsDiff(reversed[0], 0.1 * (1 - x[3])) < 1e-6);
    }

    // Pillow 9.4 ImageOps.equalize of a 32×24 RGB image: red skewed dark (v²/255), green flat (200), blue spread.
    private const string PillowEqualized =
        "AEj/rsb/w6j8PP8AohgAbP/z/zb//xjwtOcA//8A57TwGP//Nv/z/2wAGKIA/zz8qMP/xq7/SAAktzYqiv///2D//07/7f9I//9R////bwAYk///GNV7kP+Habr///9U//8A3pa9/9jM/4FCcv+fnP9jKmb/pav/hFeZ/+r5/+TA/0X/AI0A/zz/sdL/4c//eDBd9n512zD/JMlaWskk/zDbdX72XTB4/8/h/9Kx/zz/AI0A/0X/wOT/+er/mVeE/6ul/2YqY/+cn/9yQoH/zNj/vZbeAP//VP///7pph/+Qe9UY//+TGABv////Uf//SP/t/07//2D///+KKja3JABI/67G/8Oo/Dz/AKIYAGz/8/82//8Y8LTnAP//AOe08Bj//zb/8/9sABiiAP88/KjD/8au/0gAJLc2Kor///9g//9O/+3/SP//Uf///28AGJP//xjVe5D/h2m6////VP//AN6Wvf/YzP+BQnL/n5z/Yypm/6Wr/4RXmf/q+f/kwP9F/wCNAP88/7HS/+HP/3gwXfZ+ddsw/yTJWlrJJP8w23V+9l0weP/P4f/Ssf88/wCNAP9F/8Dk//nq/5lXhP+rpf9mKmP/nJ//ckKB/8zY/72W3gD//1T///+6aYf/kHvVGP//kxgAb////1H//0j/7f9O//9g////iio2tyQASP+uxv/DqPw8/wCiGABs//P/Nv//GPC05wD//wDntPAY//82//P/bAAYogD/PPyow//Grv9IACS3NiqK////YP//Tv/t/0j//1H///9vABiT//8Y1XuQ/4dpuv///1T//wDelr3/2Mz/gUJy/5+c/2MqZv+lq/+EV5n/6vn/5MD/Rf8AjQD/PP+x0v/hz/94MF32fnXbMP8kyVpayST/MNt1fvZdMHj/z+H/0rH/PP8AjQD/Rf/A5P/56v+ZV4T/q6X/Zipj/5yf/3JCgf/M2P+9lt4A//9U////ummH/5B71Rj//5MYAG////9R//9I/+3/Tv//YP///4oqNrckyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI//+0XXX8cler////Uf//G+eizP/t5P+fY5b/ycn/lmOf/+Tt/8yi5xv//1H///+rV3L8dV20////Zv//Of/G8w/////VnNL///8A4bHwHv//Qv///4QqP8M2GGn/2PYD/+r/jUVs/4d73jD/IcBOS7cS/xW9VFrPMwZI+Zmo/5Nvuv///zz///+uYIH/kH7bJ/8MpS0kiv///3gJCXj///+KJC2lDP8n236Q/4Fgrv///zz///+6b5P/qJn5SAYzz1pUvRX/ErdLTsAh/zDee4f/bEWN/+r/A/bY/2kYNsM/KoT///9C//8e8LHhAP///9Kc1f///w/zxv85//9m////tF11/HJXq////1H//xvnosz/7eT/n2OW/8nJ/5Zjn//k7f/Moucb//9R////q1dy/HVdtP///2b//zn/xvMP////1ZzS////AOGx8B7//0L///+EKj/DNhhp/9j2A//q/41FbP+He94w/yHATku3Ev8VvVRazzMGSPmZqP+Tb7r///88////rmCB/5B+2yf/DKUtJIr///94CQl4////iiQtpQz/J9t+kP+BYK7///88////um+T/6iZ+UgGM89aVL0V/xK3S07AIf8w3nuH/2xFjf/q/wP22P9pGDbDPyqE////Qv//HvCx4QD////SnNX///8P88b/Of//Zv///7RddfxyV6v///9R//8b56LM/+3k/59jlv/Jyf+WY5//5O3/zKLnG///Uf///6tXcvx1XbT///9m//85/8bzD////9Wc0v///wDhsfAe//9C////hCo/wzYYaf/Y9gP/6v+NRWz/h3veMP8hwE5LtxL/Fb1UWs8zBkj5maj/k2+6////PP///65ggf+Qftsn/wylLSSK////eAkJeP///4okLaUM/yfbfpD/gWCu////PP///7pvk/+omflIBjPPWlS9Ff8St0tOwCH/MN57h/9sRY3/6v8D9tj/aRg2wz8qhP///0L//x7wseEA////0pzV////D/PG/zn//2b/";

    [Fact]
    public void EqualizeMatchesPillowExactly()
    {
        using var scope = NewDisposeScope();
        const int h = 24, w = 32;
        var input = new float[3 * h * w];
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < h * w; p++)
            {
                int v = (int)(((long)p * p * 37 + c * 101 + p * 13) % 256);
                input[c * h * w + p] = (c == 0 ? v * v / 255 : c == 1 ? 200 : v) / 255f;
            }
        var x = tensor(input, [1, 3, h, w]);
        var expected = Convert.FromBase64String(PillowEqualized);
        var actual = RandAugment.Equalize(x).mul(255).round().to(ScalarType.Byte).data<byte>().ToArray();
        Assert.Equal(expected, actual);
        // Through Photometric: the same result.
        Assert.True(MaxAbsDiff(One(x, new Draw(Op.Equalize, 4, false)), RandAugment.Equalize(x)) < 1e-6);
    }

    [Fact]
    public void RandomErasingReplacesOneBoxOfTwoToAThirdOfTheImage()
    {
        using var scope = NewDisposeScope();
        var x = zeros(64, 3, 32, 32);
        Assert.Same(x, RandAugment.RandomErasing(x, 0, new Random(1)));
        var erased = RandAugment.RandomErasing(x, 1, new Random(1));
        for (int i = 0; i < 64; i++)
        {
            var changed = erased[i].ne(0).any(0); // [H, W]
            var rows = changed.any(1).nonzero().flatten().data<long>().ToArray();
            var cols = changed.any(0).nonzero().flatten().data<long>().ToArray();
            Assert.NotEmpty(rows);
            long bh = rows[^1] - rows[0] + 1, bw = cols[^1] - cols[0] + 1;
            Assert.Equal(bh * bw, changed.sum().item<long>()); // one solid box
            Assert.InRange(bh * bw / 1024.0, 0.015, 0.36);
        }
        // About a quarter of the images at the recipe's 0.25.
        var some = RandAugment.RandomErasing(zeros(400, 3, 16, 16), 0.25, new Random(2));
        Assert.InRange(some.ne(0).flatten(1).any(1).sum().item<long>(), 70, 130);
    }

    [Fact]
    public void TheClassificationViewIsReproducibleAndFallsBackToCropsAlone()
    {
        using var scope = NewDisposeScope();
        var images = rand(8, 3, 24, 24, generator: new Generator(3)) * 2 - 1;
        float[] mean = [0.5f, 0.5f, 0.5f], std = [0.5f, 0.5f, 0.5f];
        var o = new BeitImageClassificationTrainer.Options { RandAugmentMagnitude = 9, RandomErasingProbability = 0.25, RandomCropMinScale = 0.35 };
        manual_seed(1);
        var a = BatchAugmentation.ClassificationView(images, 16, o, mean, std, new Random(5));
        manual_seed(1);
        var b = BatchAugmentation.ClassificationView(images, 16, o, mean, std, new Random(5));
        Assert.Equal([8L, 3, 16, 16], a.shape);
        Assert.Equal(0f, MaxAbsDiff(a, b));
        Assert.True(a.isfinite().all().item<bool>());
        var plain = BatchAugmentation.TrainingView(images, null, 16, o, new Random(5)).Images;
        Assert.True(MaxAbsDiff(a, plain) > 0.1);
        // Magnitude 0 and no erasing: exactly the crops and flips of TrainingView.
        var off = new BeitImageClassificationTrainer.Options { RandAugmentMagnitude = 0, RandomErasingProbability = 0, RandomCropMinScale = 0.35 };
        Assert.Equal(0f, MaxAbsDiff(BatchAugmentation.ClassificationView(images, 16, off, mean, std, new Random(5)), plain));
        // No augmentation at all: a plain resize, whatever the magnitude.
        var none = new BeitImageClassificationTrainer.Options { Augment = false, RandAugmentMagnitude = 9, RandomErasingProbability = 1 };
        Assert.Equal(0f, MaxAbsDiff(BatchAugmentation.ClassificationView(images, 16, none, mean, std, new Random(5)), BatchAugmentation.ResizeTo(images, 16)));
    }
}
