using System.Diagnostics;
using System.Globalization;

namespace Microsoft.ML.Beit.IO;

/// <summary>
/// Where this library (and ML.NET's ONNX extraction, through <c>MLContext.TempFilePath</c>) puts temporary files: one
/// folder per process, <c>$TMPDIR/beit/&lt;pid&gt;</c>, deleted when the process exits normally. A process killed
/// with SIGKILL cannot clean up, so the first process that needs the folder also deletes the folders of processes that
/// are no longer running and were last written more than <see cref="StaleAge"/> ago (the age guards against a
/// process in another PID namespace sharing <c>/tmp</c>, whose PID looks dead from here).
/// </summary>
internal static class BeitTempFiles
{
    /// <summary>How old a dead process's folder must be before it is swept.</summary>
    public static readonly TimeSpan StaleAge = TimeSpan.FromHours(1);

    private static readonly Lock s_lock = new();
    private static string? s_folder;

    /// <summary><c>$TMPDIR/beit</c>.</summary>
    public static string Root => Path.Combine(Path.GetTempPath(), "beit");

    /// <summary>This process's folder (created, and the stale ones swept, on first use).</summary>
    public static string ProcessFolder
    {
        get
        {
            lock (s_lock)
            {
                if (s_folder != null && Directory.Exists(s_folder)) return s_folder;
                Sweep();
                string folder = Path.Combine(Root, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
                Directory.CreateDirectory(folder);
                if (s_folder == null) AppDomain.CurrentDomain.ProcessExit += (_, _) => DeleteQuietly(folder);
                s_folder = folder;
                return folder;
            }
        }
    }

    /// <summary>A new empty folder inside <see cref="ProcessFolder"/> (e.g. for one model load).</summary>
    public static string NewFolder(string prefix)
    {
        // Earlier folders of this kind whose files are gone (their models were disposed) go now, not only at exit; a
        // minute's grace keeps a folder another thread has just created for a load in progress.
        foreach (var old in Directory.EnumerateDirectories(ProcessFolder, prefix + "-*"))
        {
            try
            {
                if (DateTime.UtcNow - Directory.GetCreationTimeUtc(old) > TimeSpan.FromMinutes(1) && !Directory.EnumerateFileSystemEntries(old).Any())
                    Directory.Delete(old);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Filled or removed meanwhile: left as it is.
            }
        }
        string folder = Path.Combine(ProcessFolder, $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>A fresh file path inside <see cref="ProcessFolder"/>.</summary>
    public static string NewFile(string extension) => Path.Combine(ProcessFolder, $"{Guid.NewGuid():N}{extension}");

    /// <summary>Deletes the folders of processes that are gone and whose folders are older than <see cref="StaleAge"/>.</summary>
    public static int Sweep()
    {
        if (!Directory.Exists(Root)) return 0;
        int swept = 0;
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (pid == Environment.ProcessId || IsRunning(pid)) continue;
            if (DateTime.UtcNow - LastWrite(dir) < StaleAge) continue;
            if (DeleteQuietly(dir)) swept++;
        }
        return swept;
    }

    /// <summary>Whether a process with this id runs (as seen from this PID namespace).</summary>
    internal static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private static DateTime LastWrite(string dir)
    {
        var newest = Directory.GetLastWriteTimeUtc(dir);
        try
        {
            foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
                if (entry.LastWriteTimeUtc > newest) newest = entry.LastWriteTimeUtc;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return newest;
    }

    internal static bool DeleteQuietly(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // still in use (Windows) or not ours: left for a later sweep
        }
    }
}
