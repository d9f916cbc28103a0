using System.Buffers.Binary;
using System.Diagnostics;
using Beit.Tests.Estimators;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Xunit.Abstractions;

namespace Beit.Tests.Safety;

/// <summary>
/// Seeded mutations of a tiny model.zip — flipped bytes, truncations, and lies in the zip directory's size, offset and
/// CRC fields — loaded with <see cref="BeitModelZip.Load"/>. The only outcomes allowed are a model or an
/// <see cref="InvalidDataException"/> naming the file, each within a time and allocation cap.
/// </summary>
public sealed class ModelZipFuzzTests(ITestOutputHelper output)
{
    private const int Mutations = 400, Seed = 1313;
    private static readonly TimeSpan PerMutation = TimeSpan.FromSeconds(10);
    private const long MaxAllocatedBytes = 512L << 20;

    [Fact]
    [Trait("Category", "Slow")]
    public void MutatedModelZipsLoadOrFailWithATypedErrorQuickly()
    {
        using var dir = new TempDir();
        var original = File.ReadAllBytes(ModelZipTests.TinyZip(dir, "original.zip"));
        var headers = Headers(original);
        var rng = new Random(Seed);
        string zip = Path.Combine(dir, "model.zip");
        int loaded = 0, refused = 0;
        var slowest = TimeSpan.Zero;
        long mostAllocated = 0;
        var total = Stopwatch.StartNew();
        for (int i = 0; i < Mutations; i++)
        {
            var (mutant, what) = Mutate(original, headers, rng);
            File.WriteAllBytes(zip, mutant);
            var ml = new MLContext();
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            try
            {
                var model = BeitModelZip.Load(ml, zip, out _);
                (model as IDisposable)?.Dispose();
                loaded++;
            }
            catch (InvalidDataException e)
            {
                Assert.Contains(zip, e.Message);
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutation {i} ({what}): untyped {e.GetType().Name}: {e.Message}");
            }
            sw.Stop();
            allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
            Assert.True(sw.Elapsed < PerMutation, $"mutation {i} ({what}) took {sw.Elapsed.TotalSeconds:F1} s");
            Assert.True(allocated < MaxAllocatedBytes, $"mutation {i} ({what}) allocated {allocated:N0} bytes");
            if (sw.Elapsed > slowest) slowest = sw.Elapsed;
            mostAllocated = Math.Max(mostAllocated, allocated);
        }
        output.WriteLine($"{Mutations} mutations in {total.Elapsed.TotalSeconds:F1} s: {loaded} loaded, {refused} refused; slowest {slowest.TotalMilliseconds:F0} ms, most allocated {mostAllocated / 1e6:F1} MB");
        Assert.Equal(Mutations, loaded + refused);
        Assert.True(refused > Mutations / 2, "most mutations must be caught");
    }

    /// <summary>Offsets of the zip's local and central headers (where size and CRC lies do the most harm).</summary>
    private static int[] Headers(byte[] zip)
    {
        var found = new List<int>();
        for (int i = 0; i + 4 <= zip.Length; i++)
        {
            uint signature = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i));
            if (signature is 0x04034B50 or 0x02014B50 or 0x06054B50) found.Add(i);
        }
        return [.. found];
    }

    private static (byte[], string) Mutate(byte[] original, int[] headers, Random rng)
    {
        var b = (byte[])original.Clone();
        switch (rng.Next(5))
        {
            case 0:
            {
                int flips = rng.Next(1, 9);
                for (int k = 0; k < flips; k++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                return (b, $"{flips} flipped bits");
            }
            case 1:
            {
                int keep = rng.Next(b.Length);
                return (b[..keep], $"truncated to {keep}");
            }
            case 2:
            {
                // A header field (sizes, CRC, offsets, counts) set to a random or extreme value.
                int at = headers[rng.Next(headers.Length)] + rng.Next(4, 42);
                if (at + 4 > b.Length) at = b.Length - 4;
                uint value = rng.Next(3) switch { 0 => uint.MaxValue, 1 => (uint)rng.Next(), _ => 0 };
                BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), value);
                return (b, $"header field at {at} = {value}");
            }
            case 3:
            {
                int at = rng.Next(b.Length - 64), length = rng.Next(1, 64);
                rng.NextBytes(b.AsSpan(at, length));
                return (b, $"{length} random bytes at {at}");
            }
            default:
            {
                // A run of the file duplicated in place (shifted structures).
                int at = rng.Next(b.Length), length = rng.Next(1, Math.Min(4096, b.Length - at + 1));
                return ([.. b[..at], .. b[at..(at + length)], .. b[at..]], $"{length} bytes duplicated at {at}");
            }
        }
    }
}
