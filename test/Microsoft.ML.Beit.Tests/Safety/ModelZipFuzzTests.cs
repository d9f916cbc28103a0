using System.Buffers.Binary;
using System.Diagnostics;
using Beit.Tests.Estimators;
using Beit.Tests.Hostile;
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
        string zip = Path.Combine(dir, "model.zip");
        int loaded = 0, refused = 0;
        var slowest = TimeSpan.Zero;
        long mostAllocated = 0;
        var total = Stopwatch.StartNew();
        for (int i = 0; i < Mutations; i++)
        {
            var (mutant, what) = Mutate(original, headers, new FuzzMutator(Seed, i));
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

    /// <summary>
    /// Two in three mutations are <see cref="FuzzMutator"/>'s byte-level ones; the third sets a zip header field (sizes,
    /// CRC, offsets, counts), where lies do the most harm, to 0, a random value or 2³²−1.
    /// </summary>
    private static (byte[], string) Mutate(byte[] original, int[] headers, FuzzMutator m)
    {
        if (m.Next(3) != 0) return (m.MutateBytes(original, out var what), what);
        var b = (byte[])original.Clone();
        int at = Math.Min(headers[m.Next(headers.Length)] + 4 + m.Next(38), b.Length - 4);
        uint value = m.Next(3) switch { 0 => uint.MaxValue, 1 => (uint)m.Next(int.MaxValue), _ => 0 };
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), value);
        return (b, $"header field at {at} = {value}");
    }
}
