using Microsoft.ML.Beit.Training;

namespace Beit.Tests;

/// <summary>Synthetic training images shared by the training tests and the training benchmarks.</summary>
internal static class SyntheticImages
{
    // Coloured circles, squares and triangles at 64×64: random shape and background colours (the colour says nothing
    // about the class), random size and position, pixel noise. Fixed seed.
    public static BeitTrainingImages ColouredShapes(int count, int seed)
    {
        const int side = 64;
        var rng = new Random(seed);
        var pixels = new byte[count * 3 * side * side];
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            int c = labels[i] = i % 3;
            var bg = new[] { rng.Next(256), rng.Next(256), rng.Next(256) };
            var fg = bg.Select(v => (v + 128 + rng.Next(-40, 41)) & 255).ToArray();
            int r = rng.Next(14, 27), cx = rng.Next(r, side - r), cy = rng.Next(r, side - r);
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                {
                    int dx = x - cx, dy = y - cy;
                    bool inside = c switch
                    {
                        0 => dx * dx + dy * dy <= r * r,
                        1 => Math.Abs(dx) <= r * 0.85 && Math.Abs(dy) <= r * 0.85,
                        _ => dy >= -r && dy <= r && Math.Abs(dx) <= (dy + r) / 2.0,
                    };
                    for (int ch = 0; ch < 3; ch++)
                        pixels[((i * 3 + ch) * side + y) * side + x] = (byte)Math.Clamp((inside ? fg : bg)[ch] + rng.Next(-10, 11), 0, 255);
                }
        }
        return new BeitTrainingImages(pixels, labels, side, side, ["circle", "square", "triangle"]);
    }
}
