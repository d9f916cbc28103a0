using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit predict</c> on <see cref="BeitBatchScorer"/>: files enumerated lazily (and sharded), results written as text,
/// one JSON array, or JSON Lines streamed as they come; segmentation label maps and overlays as PNGs.
/// </summary>
internal static class BatchScoring
{
    public sealed record Settings(string[] Inputs, BeitShard Shard, bool Recursive, int TopK, bool Json, bool JsonLines, string? OutFile, bool Resume, bool Progress);

    public static int Run(BeitBatchScorer scorer, Settings s)
    {
        // An array or text lists files in sorted order (as before); JSON Lines streams them in the file system's order.
        if (s.OutFile != null) Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(s.OutFile))!);
        var files = BeitImageFiles.Enumerate(s.Inputs, s.Shard, s.Recursive, sorted: !s.JsonLines);
        if (s.Resume)
        {
            var done = BeitImageFiles.ReadScoredSources(s.OutFile!);
            if (done.Count > 0) Console.Error.WriteLine($"beit predict: resuming; {done.Count} images already in '{s.OutFile}'.");
            files = files.Where(f => !done.Contains(f.Path));
        }
        string pngFolder = s.OutFile != null ? Path.GetDirectoryName(Path.GetFullPath(s.OutFile))! : Directory.GetCurrentDirectory();
        var relative = new Dictionary<string, string>(StringComparer.Ordinal);
        var stream = Track(files, relative);

        using var bar = new ProgressBar(s.Progress || !Console.IsErrorRedirected);
        long count = 0, failed = 0;
        string? firstError = null;
        var collected = s.JsonLines ? null : new List<byte[]>();
        var text = new List<string>();
        Stream? sink = s.JsonLines ? (s.OutFile != null ? new FileStream(s.OutFile, FileMode.Append, FileAccess.Write, FileShare.Read) : Console.OpenStandardOutput()) : null;
        try
        {
            foreach (var r in scorer.Score(stream.Select(f => f.Path)))
            {
                count++;
                if (r.Error != null)
                {
                    failed++;
                    firstError ??= r.Error;
                }
                string? rel;
                lock (relative)
                {
                    relative.Remove(r.Source, out rel);
                }
                var pngs = r.LabelMap != null ? WritePngs(scorer, r, pngFolder, rel ?? Path.GetFileName(r.Source)) : default;
                var line = JsonLine(scorer, r, s.TopK, pngs);
                if (sink != null)
                {
                    sink.Write(line);
                    sink.Write("\n"u8);
                    sink.Flush();
                }
                else if (s.Json)
                {
                    collected!.Add(line);
                }
                else
                {
                    text.Add(Text(scorer, r, s.TopK, pngs));
                }
                bar.Report(count, failed);
            }
        }
        finally
        {
            if (sink != null && s.OutFile != null) sink.Dispose();
            else sink?.Flush();
        }
        bar.Finish(count, failed);
        if (!s.JsonLines && count == 0) throw new ArgumentException("No images to classify (folders are searched for png, jpg, jpeg, bmp, gif and webp files).");
        if (s.Json) WriteArray(collected!);
        else if (!s.JsonLines) foreach (var t in text) Console.Write(t);
        if (failed == 0) return 0;
        Console.Error.WriteLine($"beit predict: {failed} of {count} images failed; the first: {firstError}");
        return CliErrors.Failed;
    }

    /// <summary>Remembers each file's relative path until its result comes back (at most the scorer's prefetch window).</summary>
    private static IEnumerable<BeitImageFile> Track(IEnumerable<BeitImageFile> files, Dictionary<string, string> relative)
    {
        foreach (var f in files)
        {
            lock (relative) relative[f.Path] = f.RelativePath;
            yield return f;
        }
    }

    private readonly record struct Pngs(string? Labels, string? Overlay);

    /// <summary><c>&lt;name&gt;.labels.png</c> and <c>&lt;name&gt;.overlay.png</c>, the input's relative path without its extension under <paramref name="folder"/>.</summary>
    private static Pngs WritePngs(BeitBatchScorer scorer, BeitBatchResult r, string folder, string relativePath)
    {
        string stem = Path.Combine(folder, Path.ChangeExtension(relativePath, null));
        string labels = stem + ".labels.png", overlay = stem + ".overlay.png";
        AtomicFile.WriteAllBytes(labels, BeitSegmentationRendering.LabelMapPng(r.LabelMap, r.LabelMapSize, scorer.LabelNames.Count));
        AtomicFile.WriteAllBytes(overlay, BeitSegmentationRendering.OverlayPng(r.LabelMap, r.LabelMapSize, r.Image));
        return new Pngs(labels, overlay);
    }

    /// <summary>
    /// One result as a JSON object: <c>{"source", "predictions": [{"label", "probability"}]}</c> (classification),
    /// <c>{"source", "size": [h, w], "labels_png", "overlay_png", "classes": [{"id", "label", "pixels", "fraction"}]}</c>
    /// (segmentation), <c>{"source", "features": [...]}</c>, or <c>{"source", "error"}</c>.
    /// </summary>
    private static byte[] JsonLine(BeitBatchScorer scorer, BeitBatchResult r, int k, Pngs pngs)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("source", r.Source);
            if (r.Error != null)
            {
                w.WriteString("error", r.Error);
            }
            else if (r.Probabilities != null)
            {
                w.WriteStartArray("predictions");
                foreach (var (label, p) in PredictCommand.Top(scorer.LabelNames, r.Probabilities, k))
                {
                    w.WriteStartObject();
                    w.WriteString("label", label);
                    w.WriteNumber("probability", p);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            else if (r.LabelMap != null)
            {
                w.WriteStartArray("size");
                w.WriteNumberValue(r.LabelMapSize.Height);
                w.WriteNumberValue(r.LabelMapSize.Width);
                w.WriteEndArray();
                w.WriteString("labels_png", pngs.Labels);
                w.WriteString("overlay_png", pngs.Overlay);
                w.WriteStartArray("classes");
                foreach (var c in BeitSegmentationRendering.ClassFractions(r.LabelMap, scorer.LabelNames))
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", c.ClassId);
                    w.WriteString("label", c.Label);
                    w.WriteNumber("pixels", c.Pixels);
                    w.WriteNumber("fraction", c.Fraction);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            else
            {
                w.WriteStartArray("features");
                foreach (var v in r.Features!) w.WriteNumberValue(v);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static string Text(BeitBatchScorer scorer, BeitBatchResult r, int k, Pngs pngs)
    {
        var t = new System.Text.StringBuilder();
        t.Append(r.Source).Append('\n');
        if (r.Error != null) t.Append("  error: ").Append(r.Error).Append('\n');
        if (r.Probabilities != null)
            foreach (var (label, p) in PredictCommand.Top(scorer.LabelNames, r.Probabilities, k)) t.Append($"  {p,8:F4}  {label}\n");
        if (r.LabelMap != null)
        {
            t.Append($"  labels: {pngs.Labels}\n  overlay: {pngs.Overlay}\n");
            foreach (var c in BeitSegmentationRendering.ClassFractions(r.LabelMap, scorer.LabelNames).Take(k)) t.Append($"  {c.Fraction,8:P1}  {c.Label}\n");
        }
        if (r.Features != null) t.Append($"  features: {r.Features.Length} floats, L2 norm {Math.Sqrt(r.Features.Sum(v => (double)v * v)):F4}\n");
        return t.ToString();
    }

    /// <summary>The objects as one indented JSON array on stdout (the shape of <c>beit predict --json</c>).</summary>
    private static void WriteArray(List<byte[]> objects)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartArray();
            foreach (var o in objects)
            {
                using var doc = JsonDocument.Parse(o);
                doc.RootElement.WriteTo(w);
            }
            w.WriteEndArray();
        }
        stdout.Write("\n"u8);
    }

    /// <summary>A one-line progress report on stderr (counts and img/s), at most four times a second.</summary>
    private sealed class ProgressBar(bool enabled) : IDisposable
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _last = -1;
        private bool _shown;

        public void Report(long count, long failed)
        {
            if (!enabled) return;
            long now = _clock.ElapsedMilliseconds;
            if (_last >= 0 && now - _last < 250) return;
            _last = now;
            Write(count, failed);
        }

        public void Finish(long count, long failed)
        {
            if (!enabled) return;
            Write(count, failed);
            Console.Error.WriteLine();
            _shown = false;
        }

        private void Write(long count, long failed)
        {
            double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
            Console.Error.Write($"\r  {count:N0} images scored, {failed:N0} failed, {count / seconds:F1} img/s, {seconds:F0} s   ");
            _shown = true;
        }

        public void Dispose()
        {
            if (_shown) Console.Error.WriteLine();
        }
    }
}
