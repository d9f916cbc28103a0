using System.Text;
using System.Text.Json;

namespace Microsoft.ML.Beit.Scoring;

/// <summary>One image file to score: its path and the path relative to the folder it was found in (its stable name).</summary>
/// <param name="Path">The file's path.</param>
/// <param name="RelativePath">The path relative to the input folder, with '/' separators (the file name for a file given directly).</param>
public readonly record struct BeitImageFile(string Path, string RelativePath);

/// <summary>A slice <c>Index/Count</c> of a set of images, for array jobs: every image is in exactly one shard.</summary>
/// <param name="Index">The slice, 0 to <c>Count − 1</c>.</param>
/// <param name="Count">How many slices.</param>
public readonly record struct BeitShard(int Index, int Count)
{
    /// <summary>All images (0/1).</summary>
    public static BeitShard All => new(0, 1);

    /// <summary>Parses <c>i/n</c> (0 ≤ i &lt; n ≤ 1,000,000).</summary>
    /// <exception cref="FormatException">The text is not <c>i/n</c> with 0 ≤ i &lt; n.</exception>
    public static BeitShard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], System.Globalization.NumberStyles.None, null, out int i) ||
            !int.TryParse(parts[1], System.Globalization.NumberStyles.None, null, out int n) || n < 1 || n > 1_000_000 || i >= n)
            throw new FormatException($"A shard is i/n with 0 <= i < n <= 1000000 (for example 0/4); got '{text}'.");
        return new BeitShard(i, n);
    }

    /// <summary>
    /// True when <paramref name="relativePath"/> belongs to this shard: the 64-bit FNV-1a hash of its UTF-8 bytes modulo
    /// <see cref="Count"/>, so the split needs no listing or sorting, is the same on every machine and run, and does not
    /// move when files are added.
    /// </summary>
    public bool Contains(string relativePath)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        if (Count == 1) return true;
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(relativePath))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return (int)(hash % (ulong)Count) == Index;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Index}/{Count}";
}

/// <summary>Finding the images to score, lazily, and the ones a previous run already scored.</summary>
public static class BeitImageFiles
{
    /// <summary>The extensions searched for in folders.</summary>
    public static IReadOnlySet<string> Extensions { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>
    /// The image files of <paramref name="inputs"/> (files as given; folders searched for <see cref="Extensions"/>) in
    /// <paramref name="shard"/>. With <paramref name="sorted"/>, each folder's files come in ordinal order of their
    /// relative paths (the folder's names are held in memory); without, in the file system's order, streamed.
    /// </summary>
    /// <exception cref="FileNotFoundException">An input is neither a file nor a folder (raised when it is reached).</exception>
    public static IEnumerable<BeitImageFile> Enumerate(IEnumerable<string> inputs, BeitShard shard, bool recursive = false, bool sorted = true)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var files = Directory.EnumerateFiles(input, "*", new EnumerationOptions { RecurseSubdirectories = recursive, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.Hidden | FileAttributes.System })
                    .Where(f => Extensions.Contains(System.IO.Path.GetExtension(f)))
                    .Select(f => new BeitImageFile(f, System.IO.Path.GetRelativePath(input, f).Replace('\\', '/')))
                    .Where(f => shard.Contains(f.RelativePath));
                if (sorted) files = files.OrderBy(f => f.RelativePath, StringComparer.Ordinal);
                foreach (var f in files) yield return f;
            }
            else if (File.Exists(input))
            {
                var name = System.IO.Path.GetFileName(input);
                if (shard.Contains(name)) yield return new BeitImageFile(input, name);
            }
            else
            {
                throw new FileNotFoundException($"'{input}' is neither an image file nor a folder.", input);
            }
        }
    }

    /// <summary>
    /// The <c>source</c> values of a JSON Lines results file from an interrupted run, and makes the file safe to append to:
    /// a last line cut off mid-way (no final newline) is removed. Lines that are not JSON objects with a string
    /// <c>source</c> are skipped. A missing file gives an empty set.
    /// </summary>
    /// <exception cref="InvalidDataException">A line is longer than <paramref name="maxLineBytes"/>.</exception>
    public static HashSet<string> ReadScoredSources(string jsonlPath, int maxLineBytes = 16 << 20)
    {
        ArgumentException.ThrowIfNullOrEmpty(jsonlPath);
        var done = new HashSet<string>(StringComparer.Ordinal);
        if (!File.Exists(jsonlPath)) return done;
        long keep;
        using (var file = new FileStream(jsonlPath, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            var line = new MemoryStream();
            long lineStart = 0, position = 0;
            var buffer = new byte[1 << 16];
            int read;
            while ((read = file.Read(buffer)) > 0)
            {
                for (int i = 0; i < read; i++, position++)
                {
                    if (buffer[i] != (byte)'\n')
                    {
                        if (line.Length >= maxLineBytes) throw new InvalidDataException($"'{jsonlPath}': line starting at byte {lineStart} is longer than {maxLineBytes} bytes; not a results file.");
                        line.WriteByte(buffer[i]);
                        continue;
                    }
                    if (Source(line.GetBuffer().AsSpan(0, (int)line.Length)) is { } s) done.Add(s);
                    line.SetLength(0);
                    lineStart = position + 1;
                }
            }
            keep = lineStart;
        }
        // The bytes after the last newline are a line the previous run did not finish: drop them.
        if (keep < new FileInfo(jsonlPath).Length)
        {
            using var file = new FileStream(jsonlPath, FileMode.Open, FileAccess.Write, FileShare.None);
            file.SetLength(keep);
        }
        return done;
    }

    private static string? Source(ReadOnlySpan<byte> line)
    {
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isSource = reader.ValueTextEquals("source"u8);
                if (!reader.Read()) return null;
                if (isSource) return reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                reader.Skip();
            }
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
