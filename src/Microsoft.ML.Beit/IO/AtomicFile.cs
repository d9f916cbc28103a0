using System.Globalization;

namespace Microsoft.ML.Beit.IO;

/// <summary>
/// Writes a file so that its path only ever holds the old content or the whole new content: the bytes go to a
/// temporary file next to the target (same file system, so the final rename is atomic), which is flushed and renamed
/// over the target, or deleted when writing fails. The temporary name, <c>.&lt;name&gt;.beit-&lt;pid&gt;-&lt;id&gt;.tmp</c>,
/// says which process wrote it, so a leftover of a killed process is deleted by the next write to the same target.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="target"/> through <paramref name="write"/>, which receives the temporary path to create.</summary>
    public static void Write(string target, Action<string> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        WriteMany([(target, write)]);
    }

    /// <summary>
    /// Writes several files as one change (e.g. a checkpoint's weights and <c>config.json</c>): every new content goes to
    /// its temporary file first, and only when all are complete are they renamed over their targets, in the order given,
    /// so the file that marks the set as complete goes last. A null writer deletes its target at that point of the order
    /// (a file that must not outlive the others). A failure while writing leaves every target as it was.
    /// </summary>
    public static void WriteMany(IReadOnlyList<(string Target, Action<string>? Write)> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var staged = new List<(string Full, string? Tmp)>(files.Count);
        try
        {
            foreach (var (target, write) in files)
            {
                string full = Path.GetFullPath(target);
                if (write == null)
                {
                    staged.Add((full, null));
                    continue;
                }
                string dir = Path.GetDirectoryName(full)!;
                Directory.CreateDirectory(dir);
                SweepStale(full);
                string tmp = Path.Combine(dir, $"{Prefix(full)}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid():N}.tmp");
                staged.Add((full, tmp));
                write(tmp);
                // A symbolic link (the Hub cache's snapshot pointers) has no content of its own to flush.
                if (new FileInfo(tmp).LinkTarget == null)
                    using (var fs = new FileStream(tmp, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) fs.Flush(flushToDisk: true);
            }
            foreach (var (full, tmp) in staged)
            {
                if (tmp != null) File.Move(tmp, full, overwrite: true);
                else if (File.Exists(full)) File.Delete(full);
            }
        }
        catch
        {
            foreach (var (_, tmp) in staged)
            {
                if (tmp != null) BeitTempFiles.DeleteQuietly(tmp);
            }
            throw;
        }
    }

    /// <summary>
    /// Writes a whole folder (e.g. a checkpoint) under a temporary name next to it and swaps it in, so a crash or
    /// cancel never leaves half of one; the previous folder is removed only after the new one is in place.
    /// </summary>
    public static void WriteFolder(string folder, Action<string> write)
    {
        string full = Path.GetFullPath(folder);
        string parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        SweepStale(full);
        string pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        string tmp = Path.Combine(parent, $"{Prefix(full)}{pid}-{Guid.NewGuid():N}.tmp");
        string old = Path.Combine(parent, $"{Prefix(full)}{pid}-{Guid.NewGuid():N}.old.tmp");
        try
        {
            write(tmp);
            if (Directory.Exists(full)) Directory.Move(full, old);
            Directory.Move(tmp, full);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            if (Directory.Exists(old)) Directory.Delete(old, true);
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="target"/> atomically.</summary>
    public static void WriteAllBytes(string target, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(target, tmp => File.WriteAllBytes(tmp, copy));
    }

    /// <summary>
    /// Fails now, not after hours of work, when <paramref name="target"/> (a file, or a folder written with
    /// <see cref="WriteFolder"/>) cannot be written: creates its parent folder, then creates and deletes a probe file next to it (a read-only or missing mount, a path under a regular file, no
    /// permission). A full disk is only caught if not even an empty file fits.
    /// </summary>
    /// <exception cref="IOException">The folder cannot be created or written; the message names <paramref name="target"/>.</exception>
    public static void CheckWritable(string target)
    {
        // The target may be a file or a folder written by WriteFolder: either way its parent must take new entries.
        string full = Path.GetFullPath(target);
        string dir = Path.GetDirectoryName(full)!;
        string probe = Path.Combine(dir, $"{Prefix(full)}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-probe.tmp");
        try
        {
            Directory.CreateDirectory(dir);
            using (new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot write '{target}': {e.Message}", e);
        }
        finally
        {
            try { File.Delete(probe); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    /// <summary>Deletes temporary files (or folders) left next to <paramref name="target"/> by processes that no longer run.</summary>
    public static int SweepStale(string target)
    {
        string full = Path.GetFullPath(target);
        string dir = Path.GetDirectoryName(full)!, prefix = Prefix(full);
        if (!Directory.Exists(dir)) return 0;
        int swept = 0;
        foreach (var file in Directory.EnumerateFileSystemEntries(dir, prefix + "*.tmp"))
        {
            string rest = Path.GetFileName(file)[prefix.Length..];
            int dash = rest.IndexOf('-');
            if (dash <= 0 || !int.TryParse(rest.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (pid == Environment.ProcessId || BeitTempFiles.IsRunning(pid)) continue;
            if (BeitTempFiles.DeleteQuietly(file)) swept++;
        }
        return swept;
    }

    private static string Prefix(string full) => $".{Path.GetFileName(full)}.beit-";
}
