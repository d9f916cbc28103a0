using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Pretraining;

/// <summary>
/// A visual tokenizer learnt from the user's own images: k-means over (optionally per-patch standardised) patch
/// pixels; a patch's token is its nearest centroid. Fast, deterministic for a seed, and needs no download, so it is
/// the offline default for pre-training. Saved next to the checkpoint as <see cref="FileName"/>.
/// </summary>
public sealed class KMeansPatchTokenizer : IBeitVisualTokenizer, IDisposable
{
    /// <summary>File name of a saved tokenizer (safetensors with the codebook and its settings in the metadata).</summary>
    public const string FileName = "kmeans_tokenizer.safetensors";

    /// <summary>Settings for <see cref="Fit"/>.</summary>
    public sealed class Options
    {
        /// <summary>Codebook size (number of centroids).</summary>
        public int VocabSize { get; set; } = 512;
        /// <summary>Lloyd iterations.</summary>
        public int Iterations { get; set; } = 25;
        /// <summary>Most patches sampled for fitting; the rest are not needed for a good codebook.</summary>
        public int MaxSamples { get; set; } = 200_000;
        /// <summary>Subtract each patch's mean and divide by its standard deviation first, so tokens encode shape rather than brightness.</summary>
        public bool StandardizePatches { get; set; } = true;
        /// <summary>Seed for sampling and k-means++ initialisation.</summary>
        public int Seed { get; set; }
    }

    private readonly Tensor _centroids;     // [K, D]
    private readonly Tensor _centroidNorms; // [K]

    private KMeansPatchTokenizer(Tensor centroids, bool standardize)
    {
        _centroids = centroids.detach().to(float32).contiguous();
        _centroidNorms = _centroids.pow(2).sum(1);
        StandardizePatches = standardize;
    }

    /// <inheritdoc />
    public int VocabSize => (int)_centroids.shape[0];

    /// <summary>Length of a patch vector (<c>patch·patch·channels</c>).</summary>
    public int PatchDim => (int)_centroids.shape[1];

    /// <summary>Whether patches are standardised before the nearest-centroid search.</summary>
    public bool StandardizePatches { get; }

    /// <summary>Patch vectors <c>[B, Gh·Gw, P·P·C]</c> of an image batch, row-major over the grid.</summary>
    public static Tensor Patchify(Tensor pixelValues, int patchSize, bool standardize)
    {
        using var scope = NewDisposeScope();
        long b = pixelValues.shape[0], c = pixelValues.shape[1];
        long gh = pixelValues.shape[2] / patchSize, gw = pixelValues.shape[3] / patchSize;
        var x = pixelValues[.., .., ..(int)(gh * patchSize), ..(int)(gw * patchSize)]
            .reshape(b, c, gh, patchSize, gw, patchSize)
            .permute(0, 2, 4, 3, 5, 1)
            .reshape(b, gh * gw, patchSize * patchSize * c);
        if (standardize)
        {
            var mean = x.mean([2], keepdim: true);
            var std = x.std(2, unbiased: false, keepdim: true);
            x = (x - mean) / (std + 1e-3);
        }
        return x.contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor Tokenize(Tensor pixelValues, int patchSize)
    {
        using var scope = NewDisposeScope();
        var x = Patchify(pixelValues.to(float32), patchSize, StandardizePatches);
        if (x.shape[2] != PatchDim)
            throw new ArgumentException($"Patches have {x.shape[2]} values but the tokenizer was fitted on {PatchDim}-value patches.");
        long b = x.shape[0], n = x.shape[1];
        var ids = Assign(x.reshape(b * n, PatchDim), _centroids.to(x.device), _centroidNorms.to(x.device));
        return ids.reshape(b, n).MoveToOuterDisposeScope();
    }

    // Nearest centroid by ||x||² − 2x·c + ||c||² (||x||² is constant per row and dropped).
    private static Tensor Assign(Tensor x, Tensor centroids, Tensor norms) =>
        (norms.unsqueeze(0) - 2 * x.matmul(centroids.t())).argmin(1);

    /// <summary>
    /// Learns a codebook from image batches (<c>float32 [B,3,H,W]</c>, model-normalised). Deterministic for
    /// <see cref="Options.Seed"/> and a given batch order.
    /// </summary>
    public static KMeansPatchTokenizer Fit(IEnumerable<Tensor> batches, int patchSize, Options? options = null,
        IProgress<BeitTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new Options();
        if (options.VocabSize < 2) throw new ArgumentException("VocabSize must be at least 2.");
        if (options.Iterations < 1) throw new ArgumentException("Iterations must be at least 1.");
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)options.Seed);
        var parts = new List<Tensor>();
        long total = 0;
        foreach (var batch in batches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var p = Patchify(batch.to(float32), patchSize, options.StandardizePatches);
            parts.Add(p.reshape(-1, p.shape[2]));
            total += parts[^1].shape[0];
            if (total >= 4L * options.MaxSamples) break;
        }
        if (parts.Count == 0) throw new ArgumentException("No images to fit the tokenizer on.");
        var all = cat(parts, 0);
        var data = total > options.MaxSamples ? all[randperm(total, generator: generator)[..options.MaxSamples]] : all;
        long n = data.shape[0];
        if (n < options.VocabSize) throw new ArgumentException($"Only {n} patches for a codebook of {options.VocabSize}; use more images or a smaller VocabSize.");

        // k-means++ seeding.
        var dataNorms = data.pow(2).sum(1);
        var chosen = new List<long> { randint(n, [1], generator: generator).item<long>() };
        var best = (dataNorms - 2 * data.matmul(data[chosen[0]]) + dataNorms[chosen[0]]).clamp_min(0);
        for (int k = 1; k < options.VocabSize; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var window = TorchCallWindow.Open(); // TorchSharp's temporary Scalars must outlive their libtorch calls
            var probs = best / best.sum().clamp_min(1e-12);
            long next = multinomial(probs, 1, generator: generator).item<long>();
            chosen.Add(next);
            var d = (dataNorms - 2 * data.matmul(data[next]) + dataNorms[next]).clamp_min(0);
            best = minimum(best, d);
        }
        var centroids = data[tensor(chosen.ToArray())].clone();

        for (int it = 0; it < options.Iterations; it++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var window = TorchCallWindow.Open();
            using var iter = NewDisposeScope();
            var ids = Assign(data, centroids, centroids.pow(2).sum(1));
            var sums = zeros_like(centroids).index_add_(0, ids, data, 1);
            var counts = zeros(options.VocabSize, dtype: float32).index_add_(0, ids, ones(n, dtype: float32), 1);
            var empty = counts.eq(0);
            var updated = sums / counts.clamp_min(1).unsqueeze(1);
            // An empty cluster keeps its old centroid instead of collapsing to zero.
            var next = where(empty.unsqueeze(1), centroids, updated);
            long moved = (next - centroids).abs().gt(1e-6).any(1).sum().item<long>();
            centroids.copy_(next);
            if (progress is not null)
                progress.Report(new BeitTrainingProgress(BeitTrainingPhase.Tokenizer, 0, 0, 0, 0, it + 1, options.Iterations, double.NaN, double.NaN, double.NaN, double.NaN,
                    TimeSpan.Zero, TimeSpan.Zero)
                {
                    Message = string.Create(CultureInfo.InvariantCulture, $"k-means iteration {it + 1}/{options.Iterations}: {moved} centroids moved, {empty.sum().item<long>()} empty"),
                });
            if (moved == 0) break;
        }
        var tokenizer = new KMeansPatchTokenizer(centroids, options.StandardizePatches);
        tokenizer._centroids.MoveToOuterDisposeScope();
        tokenizer._centroidNorms.MoveToOuterDisposeScope();
        return tokenizer;
    }

    /// <summary>Writes the tokenizer into <paramref name="folder"/> as <see cref="FileName"/> (atomically).</summary>
    public void Save(string folder)
    {
        Directory.CreateDirectory(folder);
        var codebook = TensorData.FromFloats(_centroids.cpu().data<float>().ToArray(), _centroids.shape);
        var meta = new Dictionary<string, string>
        {
            ["tokenizer"] = "kmeans-patch",
            ["config"] = new JsonObject { ["vocab_size"] = VocabSize, ["patch_dim"] = PatchDim, ["standardize_patches"] = StandardizePatches }.ToJsonString(),
        };
        SafeTensors.Write(Path.Combine(folder, FileName), new Dictionary<string, TensorData> { ["codebook"] = codebook }, meta);
    }

    /// <summary>Loads a tokenizer saved by <see cref="Save"/> from a folder or file.</summary>
    public static KMeansPatchTokenizer Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"No k-means tokenizer at '{path}'.", file);
        Dictionary<string, TensorData> tensors;
        Dictionary<string, string> meta;
        using (var s = BeitFiles.OpenReadData(file)) tensors = SafeTensors.Read(s, out meta);
        if (!meta.TryGetValue("tokenizer", out var kind) || kind != "kmeans-patch" || !tensors.TryGetValue("codebook", out var codebook))
            throw new InvalidDataException($"'{file}' is not a k-means patch tokenizer.");
        var cfg = JsonNode.Parse(meta["config"])!;
        using var c = tensor(codebook.ToFloatArray(), codebook.Shape);
        var tokenizer = new KMeansPatchTokenizer(c, cfg["standardize_patches"]!.GetValue<bool>());
        return tokenizer;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _centroids.Dispose();
        _centroidNorms.Dispose();
    }
}
