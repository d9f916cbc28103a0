namespace Microsoft.ML.Beit.Training.Pretraining;

/// <summary>
/// BEiT's blockwise masking (Bao et al. 2021, arXiv:2106.08254, Algorithm 1; microsoft/unilm <c>masking_generator.py</c>): rectangular blocks of
/// random area and aspect ratio are masked until the target number of patches is reached.
/// </summary>
/// <remarks>
/// As in BEiT v2's generator, the result is then topped up (or trimmed) with single random patches so every mask has
/// exactly <see cref="Options.NumMaskingPatches"/> patches; the original v1 code could stop short. Deterministic for a
/// given <see cref="Options.Seed"/> (each call advances the generator's own random stream).
/// </remarks>
internal sealed class BlockwiseMaskingGenerator
{
    /// <summary>Settings of the generator; the defaults are the paper's for a 14×14 grid.</summary>
    public sealed record Options
    {
        /// <summary>Patch-grid height.</summary>
        public int GridHeight { get; set; } = 14;
        /// <summary>Patch-grid width.</summary>
        public int GridWidth { get; set; } = 14;
        /// <summary>Patches masked in every mask (75 of 196, about 40 %).</summary>
        public int NumMaskingPatches { get; set; } = 75;
        /// <summary>Smallest block area tried.</summary>
        public int MinNumPatches { get; set; } = 16;
        /// <summary>Largest block area tried; null means <see cref="NumMaskingPatches"/>.</summary>
        public int? MaxNumPatches { get; set; }
        /// <summary>Smallest block aspect ratio (height / width); the largest is its inverse unless <see cref="MaxAspect"/> is set.</summary>
        public double MinAspect { get; set; } = 0.3;
        /// <summary>Largest block aspect ratio; null means 1 / <see cref="MinAspect"/>.</summary>
        public double? MaxAspect { get; set; }
        /// <summary>Tries to place one block before giving up on that round.</summary>
        public int MaxAttempts { get; set; } = 10;
        /// <summary>Seed of the random stream.</summary>
        public int Seed { get; set; }
    }

    /// <summary>
    /// A block the generator placed: top-left corner and size in patches, with the sampled target area and aspect
    /// ratio it was rounded from, and the patch budget left when it was drawn.
    /// </summary>
    public readonly record struct Block(int Top, int Left, int Height, int Width, double Area, double Aspect, int Budget);

    private readonly Options _options;
    private readonly Random _random;
    private readonly int _maxNumPatches;
    private readonly double _logMinAspect, _logMaxAspect;

    /// <summary>Creates a generator; throws <see cref="ArgumentException"/> for settings no mask can satisfy.</summary>
    public BlockwiseMaskingGenerator(Options? options = null)
    {
        _options = options ?? new Options();
        var o = _options;
        int patches = o.GridHeight * o.GridWidth;
        if (o.GridHeight <= 0 || o.GridWidth <= 0) throw new ArgumentException("Grid sides must be positive.");
        if (o.NumMaskingPatches < 0 || o.NumMaskingPatches > patches)
            throw new ArgumentException($"NumMaskingPatches must be in 0..{patches} (got {o.NumMaskingPatches}).");
        if (o.MinNumPatches <= 0) throw new ArgumentException("MinNumPatches must be positive.");
        if (o.MinAspect <= 0) throw new ArgumentException("MinAspect must be positive.");
        if (o.MaxAttempts <= 0) throw new ArgumentException("MaxAttempts must be positive.");
        _maxNumPatches = o.MaxNumPatches ?? o.NumMaskingPatches;
        double maxAspect = o.MaxAspect ?? 1.0 / o.MinAspect;
        _logMinAspect = Math.Log(Math.Min(o.MinAspect, maxAspect));
        _logMaxAspect = Math.Log(Math.Max(o.MinAspect, maxAspect));
        _random = new Random(o.Seed);
    }

    /// <summary>Number of patches in the grid.</summary>
    public int NumPatches => _options.GridHeight * _options.GridWidth;

    /// <summary>The next mask, row-major over the grid (true = masked).</summary>
    public bool[] Next() => Next(out _);

    /// <summary>The next mask, with the blocks that were placed before the exact-count top-up.</summary>
    public bool[] Next(out IReadOnlyList<Block> blocks)
    {
        var o = _options;
        int gh = o.GridHeight, gw = o.GridWidth;
        var mask = new bool[gh * gw];
        var placed = new List<Block>();
        int count = 0;
        while (count < o.NumMaskingPatches)
        {
            int budget = Math.Min(o.NumMaskingPatches - count, _maxNumPatches);
            int delta = TryPlaceBlock(mask, budget, placed);
            if (delta == 0) break;
            count += delta;
        }
        // Exact count, as BEiT v2 does: mask (or unmask) single random patches.
        if (count != o.NumMaskingPatches)
        {
            bool target = count < o.NumMaskingPatches;
            var candidates = Enumerable.Range(0, mask.Length).Where(i => mask[i] != target).ToArray();
            int need = Math.Abs(o.NumMaskingPatches - count);
            for (int k = 0; k < need; k++)
            {
                int j = k + _random.Next(candidates.Length - k);
                (candidates[k], candidates[j]) = (candidates[j], candidates[k]);
                mask[candidates[k]] = target;
            }
        }
        blocks = placed;
        return mask;
    }

    private int TryPlaceBlock(bool[] mask, int budget, List<Block> placed)
    {
        var o = _options;
        int gh = o.GridHeight, gw = o.GridWidth;
        for (int attempt = 0; attempt < o.MaxAttempts; attempt++)
        {
            double lo = o.MinNumPatches, hi = budget;
            double area = lo + (hi - lo) * _random.NextDouble();
            double aspect = Math.Exp(_logMinAspect + (_logMaxAspect - _logMinAspect) * _random.NextDouble());
            int h = (int)Math.Round(Math.Sqrt(area * aspect), MidpointRounding.ToEven);
            int w = (int)Math.Round(Math.Sqrt(area / aspect), MidpointRounding.ToEven);
            if (h <= 0 || w <= 0 || h >= gh || w >= gw) continue;
            int top = _random.Next(gh - h + 1), left = _random.Next(gw - w + 1);
            int already = 0;
            for (int y = top; y < top + h; y++)
                for (int x = left; x < left + w; x++)
                    if (mask[y * gw + x]) already++;
            int fresh = h * w - already;
            if (fresh <= 0 || fresh > budget) continue;
            for (int y = top; y < top + h; y++)
                for (int x = left; x < left + w; x++)
                    mask[y * gw + x] = true;
            placed.Add(new Block(top, left, h, w, area, aspect, budget));
            return fresh;
        }
        return 0;
    }
}
