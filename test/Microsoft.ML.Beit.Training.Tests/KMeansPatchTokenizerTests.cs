using Microsoft.ML.Beit.Training.Pretraining;
using static TorchSharp.torch;

namespace Beit.Tests;

public class KMeansPatchTokenizerTests
{
    // Images of 4×4 patches (patch 4), each patch one of four patterns plus small noise.
    private static (Tensor Images, long[] Patterns) MakeImages(int count, int seed)
    {
        var g = new Generator((ulong)seed);
        var patterns = new float[4][];
        for (int k = 0; k < 4; k++)
        {
            patterns[k] = new float[3 * 16];
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 4; x++)
                        patterns[k][(c * 4 + y) * 4 + x] = k switch { 0 => y < 2 ? 1 : -1, 1 => x < 2 ? 1 : -1, 2 => (x + y) % 2 == 0 ? 1 : -1, _ => x == y ? 1 : -1 };
        }
        var ids = randint(4, [count, 16], generator: g);
        var img = zeros(count, 3, 16, 16);
        var idArr = ids.data<long>().ToArray();
        var noise = randn([count, 3, 16, 16], generator: g) * 0.05f;
        var data = new float[count * 3 * 16 * 16];
        for (int i = 0; i < count; i++)
            for (int p = 0; p < 16; p++)
            {
                int gy = p / 4, gx = p % 4;
                var pat = patterns[idArr[i * 16 + p]];
                for (int c = 0; c < 3; c++)
                    for (int y = 0; y < 4; y++)
                        for (int x = 0; x < 4; x++)
                            data[((i * 3 + c) * 16 + gy * 4 + y) * 16 + gx * 4 + x] = pat[(c * 4 + y) * 4 + x];
            }
        return (tensor(data, [count, 3, 16, 16]) + noise, idArr);
    }

    [Fact]
    public void LearnsOneTokenPerPatternDeterministically()
    {
        using var scope = NewDisposeScope();
        var (images, truth) = MakeImages(64, 1);
        using var tok = KMeansPatchTokenizer.Fit([images], 4, new() { VocabSize = 4, Seed = 5 });
        using var again = KMeansPatchTokenizer.Fit([images], 4, new() { VocabSize = 4, Seed = 5 });
        var ids = tok.Tokenize(images, 4);
        Assert.Equal(new long[] { 64, 16 }, ids.shape);
        Assert.Equal(ids.data<long>().ToArray(), again.Tokenize(images, 4).data<long>().ToArray());
        // A one-to-one map between patterns and tokens.
        var pred = ids.data<long>().ToArray();
        var map = new Dictionary<long, long>();
        for (int i = 0; i < truth.Length; i++)
        {
            if (!map.TryAdd(truth[i], pred[i])) Assert.Equal(map[truth[i]], pred[i]);
        }
        Assert.Equal(4, map.Values.Distinct().Count());
    }

    [Fact]
    public void SaveLoadRoundTripGivesSameTokens()
    {
        using var scope = NewDisposeScope();
        var (images, _) = MakeImages(16, 2);
        using var dir = new TempDir();
        using var tok = KMeansPatchTokenizer.Fit([images], 4, new() { VocabSize = 8, Seed = 1 });
        tok.Save(dir);
        Assert.Equal(new[] { KMeansPatchTokenizer.FileName }, Directory.GetFiles(dir).Select(Path.GetFileName));
        using var back = KMeansPatchTokenizer.Load(dir);
        Assert.Equal(8, back.VocabSize);
        Assert.Equal(tok.Tokenize(images, 4).data<long>().ToArray(), back.Tokenize(images, 4).data<long>().ToArray());
    }

    [Fact]
    public void RejectsMismatchedPatchesAndTooFewSamples()
    {
        using var scope = NewDisposeScope();
        var (images, _) = MakeImages(4, 3);
        using var tok = KMeansPatchTokenizer.Fit([images], 4, new() { VocabSize = 4, Seed = 1 });
        Assert.Throws<ArgumentException>(() => tok.Tokenize(images, 8));
        Assert.Throws<ArgumentException>(() => KMeansPatchTokenizer.Fit([images[..1]], 8, new() { VocabSize = 64 }));
    }
}
