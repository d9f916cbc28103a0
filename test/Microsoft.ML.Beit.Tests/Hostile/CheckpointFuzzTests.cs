using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Onnx;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Hostile;

/// <summary>
/// Seeded fuzzing of the tiny fixtures: <c>model.safetensors</c> (bytes and header JSON), <c>pytorch_model.bin</c> (zip
/// bytes and the pickle inside), <c>config.json</c> and <c>preprocessor_config.json</c>. Every mutation must end in
/// success or a documented typed exception, within a time and an allocation bound; anything else fails with the seed
/// and mutation index, which reproduce it alone (<see cref="FuzzMutator"/>).
/// </summary>
[Trait("Category", "Slow")]
public sealed class CheckpointFuzzTests(ITestOutputHelper log)
{
    /// <summary>Fixed so CI is reproducible; change it locally (BEIT_FUZZ_SEED) to explore further.</summary>
    private static readonly int s_seed = int.TryParse(Environment.GetEnvironmentVariable("BEIT_FUZZ_SEED"), out int s) ? s : 20261129;

    /// <summary>Multiplies every mutation count (BEIT_FUZZ_SCALE, default 1), for longer runs by hand.</summary>
    private static readonly int s_scale = int.TryParse(Environment.GetEnvironmentVariable("BEIT_FUZZ_SCALE"), out int k) && k > 0 ? k : 1;

    /// <summary>One mutation may take at most this long (the readers answer in milliseconds).</summary>
    private static readonly TimeSpan s_perMutation = TimeSpan.FromSeconds(2);

    /// <summary>One mutation may allocate at most this much (64 MiB; the inputs are under 200 KB).</summary>
    private const long PerMutationBytes = 64L << 20;

    private static readonly Type[] s_checkpointErrors = [typeof(InvalidDataException), typeof(UnsafePickleException), typeof(CheckpointMismatchException)];
    private static readonly Type[] s_configErrors = [typeof(InvalidDataException)];

    private sealed record Outcome(int Successes, Dictionary<string, int> Errors, List<string> Failures, TimeSpan Slowest, long MostAllocated);

    /// <summary>Runs <paramref name="count"/> mutations through <paramref name="body"/>, classifying each outcome.</summary>
    /// <param name="names">When set, every refusal's message must contain it (the file's name).</param>
    private Outcome Fuzz(string target, int count, Type[] allowed, Action<FuzzMutator, Action<string>> body, string? names = null)
    {
        count *= s_scale;
        int successes = 0;
        var errors = new Dictionary<string, int>();
        var failures = new List<string>();
        var slowest = TimeSpan.Zero;
        long mostAllocated = 0;
        var (error, elapsed, _) = Bounded.Run(() =>
        {
            for (int i = 0; i < count; i++)
            {
                string what = "?";
                long before = GC.GetAllocatedBytesForCurrentThread();
                var sw = Stopwatch.StartNew();
                Exception? thrown = null;
                try { body(new FuzzMutator(s_seed, i), w => what = w); }
                catch (Exception e) { thrown = e; }
                sw.Stop();
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                slowest = sw.Elapsed > slowest ? sw.Elapsed : slowest;
                mostAllocated = Math.Max(mostAllocated, allocated);
                string id = $"{target} seed {s_seed} mutation {i} ({what})";
                if (thrown is null) successes++;
                else if (allowed.Contains(thrown.GetType()) && (names is null || thrown.Message.Contains(names, StringComparison.Ordinal)))
                    errors[thrown.GetType().Name] = errors.GetValueOrDefault(thrown.GetType().Name) + 1;
                else failures.Add($"{id}: {thrown.GetType().FullName} (allowed: {string.Join(", ", allowed.Select(t => t.Name))}{(names is null ? "" : $", naming '{names}'")}): {thrown.Message}\n{thrown.StackTrace}");
                if (sw.Elapsed > s_perMutation) failures.Add($"{id}: took {sw.Elapsed.TotalMilliseconds:F0} ms");
                if (allocated > PerMutationBytes) failures.Add($"{id}: allocated {allocated:N0} bytes");
            }
        }, TimeSpan.FromSeconds(120 * s_scale));
        Assert.Null(error);
        log.WriteLine($"{target}: {count} mutations in {elapsed.TotalSeconds:F2} s; {successes} read, " +
                      string.Join(", ", errors.Select(kv => $"{kv.Value} {kv.Key}")) +
                      $"; slowest {slowest.TotalMilliseconds:F1} ms, most allocated {mostAllocated / 1024.0 / 1024:F1} MiB");
        Assert.True(failures.Count == 0, $"{failures.Count} of {count} mutations misbehaved:\n" + string.Join("\n\n", failures.Take(10)));
        // The mutations must reach both outcomes, or the fuzzer is not exercising the reader.
        Assert.True(errors.Count > 0, $"{target}: no mutation was refused");
        return new Outcome(successes, errors, failures, slowest, mostAllocated);
    }

    [Fact]
    public void SafeTensorsBytes()
    {
        var original = File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        Fuzz("model.safetensors bytes", 700, s_checkpointErrors, (m, describe) =>
        {
            var bytes = m.MutateBytes(original, out var what);
            describe(what);
            UseTensors(SafeTensors.Read(new MemoryStream(bytes), out _));
        });
    }

    [Fact]
    public void SafeTensorsHeader()
    {
        var original = File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos"), SafeTensors.ModelFileName));
        int headerLength = checked((int)BitConverter.ToInt64(original, 0));
        string header = Encoding.UTF8.GetString(original, 8, headerLength);
        var data = original.AsSpan(8 + headerLength).ToArray();
        var config = BeitConfig.Load(Fixtures.Tiny("cls_relpos"));
        int exported = 0;
        var outcome = Fuzz("model.safetensors header", 700, s_checkpointErrors, (m, describe) =>
        {
            string what;
            var mutated = Encoding.UTF8.GetBytes(m.Next(2) == 0 ? m.MutateJson(header, out what) : ConsistentHeaderMutation(m, header, out what));
            describe(what);
            var tensors = SafeTensors.Read(new MemoryStream([.. BitConverter.GetBytes((long)mutated.Length), .. mutated, .. data]), out _);
            UseTensors(tensors);
            // Tensors the reader accepts must also be safe to export: a reshaped or re-typed weight is a typed error there.
            if (exported++ < 60) BeitOnnxExporter.ExportToBytes(config, tensors, BeitOnnxTask.ImageClassification);
        });
        Assert.True(outcome.Successes > 0, "no header mutation was accepted; the fuzzer never reaches the exporter");
    }

    [Fact]
    public void PyTorchZipBytes()
    {
        var original = File.ReadAllBytes(Path.Combine(Fixtures.Tiny("cls_relpos_bin"), PyTorchCheckpoint.ModelFileName));
        Fuzz("pytorch_model.bin bytes", 500, s_checkpointErrors, (m, describe) =>
        {
            var bytes = m.MutateBytes(original, out var what);
            describe(what);
            UseTensors(PyTorchCheckpoint.Read(new MemoryStream(bytes), "fuzz.bin"));
        }, names: "fuzz.bin");
    }

    [Fact]
    public void PyTorchPickle()
    {
        // Mutate data.pkl itself and re-zip it with the original storages: zip damage would hide most pickle paths.
        var records = new List<(string Name, byte[] Data)>();
        using (var zip = ZipFile.OpenRead(Path.Combine(Fixtures.Tiny("cls_relpos_bin"), PyTorchCheckpoint.ModelFileName)))
        {
            foreach (var e in zip.Entries)
            {
                using var s = e.Open();
                var ms = new MemoryStream();
                s.CopyTo(ms);
                records.Add((e.FullName, ms.ToArray()));
            }
        }
        int pkl = records.FindIndex(r => r.Name.EndsWith("/data.pkl", StringComparison.Ordinal));
        var pickle = records[pkl].Data;
        Fuzz("pytorch_model.bin pickle", 900, s_checkpointErrors, (m, describe) =>
        {
            var mutated = m.MutateBytes(pickle, out var what);
            describe(what);
            var ms = new MemoryStream();
            using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            {
                for (int i = 0; i < records.Count; i++)
                {
                    using var s = zip.CreateEntry(records[i].Name, CompressionLevel.NoCompression).Open();
                    s.Write(i == pkl ? mutated : records[i].Data);
                }
            }
            ms.Position = 0;
            UseTensors(PyTorchCheckpoint.Read(ms, "fuzz.bin"));
        }, names: "fuzz.bin");
    }

    [Fact]
    public void ConfigJson()
    {
        foreach (var name in new[] { "cls_relpos", "seg_uper" })
        {
            string original = File.ReadAllText(Path.Combine(Fixtures.Tiny(name), BeitConfig.FileName));
            using var dir = new TempDir();
            string file = Path.Combine(dir, BeitConfig.FileName);
            var outcome = Fuzz($"{name}/config.json", 500, s_configErrors, (m, describe) =>
            {
                string json = m.MutateJson(original, out var what);
                describe(what);
                File.WriteAllText(file, json);
                var config = BeitConfig.Load(dir);
                // What loads must also write back and load again.
                BeitConfig.FromJson(config.ToJson());
            }, names: file);
            Assert.True(outcome.Successes > 0, "no config mutation was accepted");
        }
    }

    [Fact]
    public void PreprocessorConfigJson()
    {
        foreach (var (label, original) in new[] { ("preprocessor_config.json", HostileConfigTests.Preprocessor), ("legacy feature extractor", LegacyPreprocessor) })
        {
            var outcome = Fuzz(label, 400, s_configErrors, (m, describe) =>
            {
                string json = m.MutateJson(original, out var what);
                describe(what);
                var p = BeitImageProcessor.FromJson(json, "fuzz/preprocessor_config.json");
                BeitImageProcessor.FromJson(p.ToJson());
            }, names: "fuzz/preprocessor_config.json");
            Assert.True(outcome.Successes > 0, "no preprocessor mutation was accepted");
        }
    }

    /// <summary>
    /// A header change the reader must accept (the data still tiles): one tensor re-typed to another dtype of the same
    /// width, or reshaped to the same element count. Whatever consumes the tensors must then refuse it by name.
    /// </summary>
    private static string ConsistentHeaderMutation(FuzzMutator m, string header, out string what)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(header)!.AsObject();
        var names = root.Select(kv => kv.Key).Where(k => k != "__metadata__").ToList();
        string name = names[m.Next(names.Count)];
        var t = root[name]!.AsObject();
        var shape = t["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToList();
        if (m.Next(2) == 0)
        {
            string from = t["dtype"]!.GetValue<string>();
            string[] same = from is "F32" or "I32" ? ["F32", "I32"] : from is "F64" or "I64" ? ["F64", "I64"] : [from];
            string to = same[m.Next(same.Length)];
            t["dtype"] = to;
            what = $"{name}: dtype {from} -> {to}";
        }
        else
        {
            long count = shape.Aggregate(1L, (a, d) => a * d);
            List<long> reshaped = m.Next(3) switch
            {
                0 => [count],
                1 => [1, .. shape],
                _ => Enumerable.Reverse(shape).ToList(),
            };
            t["shape"] = new System.Text.Json.Nodes.JsonArray(reshaped.Select(d => (System.Text.Json.Nodes.JsonNode?)d).ToArray());
            what = $"{name}: shape [{string.Join(",", shape)}] -> [{string.Join(",", reshaped)}]";
        }
        return root.ToJsonString();
    }

    /// <summary>An old <c>BeitFeatureExtractor</c> file (bare-int sizes, <c>reduce_labels</c>), as older Hub checkpoints carry.</summary>
    private const string LegacyPreprocessor = """
        {"crop_size": 224, "do_center_crop": false, "do_normalize": true, "do_resize": true,
         "feature_extractor_type": "BeitFeatureExtractor", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
         "reduce_labels": false, "resample": 2, "size": 224}
        """;

    /// <summary>What a consumer does with tensors a reader returned: rename them and check their element types.</summary>
    private static void UseTensors(Dictionary<string, TensorData> tensors)
    {
        var classic = BeitWeightNames.ToClassic(tensors, "fuzz");
        CheckpointMismatchException.ThrowIfNotFloat(classic, "fuzz");
        foreach (var t in classic.Values) _ = t.ToFloatArray();
    }
}
