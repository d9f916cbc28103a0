using System.Runtime.InteropServices;

namespace Microsoft.ML.Beit.IO;

/// <summary>
/// The one way this library opens a file it was handed (an image, a <c>model.zip</c>): the path must lead, after
/// symbolic links, to a <i>regular</i> file, and no more than a stated number of bytes are read. A symbolic link to
/// <c>/dev/zero</c> would otherwise be read until the process runs out of memory, and opening a FIFO blocks until some
/// other process writes to it, i.e. forever.
/// </summary>
public static partial class BeitFiles
{
    /// <summary>Why a path was refused; the caller turns it into its own typed exception naming the file.</summary>
    internal sealed class RefusedException(string reason, bool tooLarge = false) : IOException(reason)
    {
        /// <summary>Refused for its size (otherwise for its kind).</summary>
        public bool TooLarge { get; } = tooLarge;
    }

    /// <summary>Throws <see cref="RefusedException"/> when <paramref name="path"/> (after links) is not a regular file.</summary>
    /// <exception cref="FileNotFoundException">Nothing is at <paramref name="path"/>.</exception>
    public static void RequireRegularFile(string path)
    {
        if (Directory.Exists(path)) throw new RefusedException("it is a folder, not a file");
        if (FileKind(path) is string kind) throw new RefusedException($"it is a {kind}, not a regular file");
    }

    /// <summary>Opens <paramref name="path"/> for reading after <see cref="RequireRegularFile"/>; refuses files longer than <paramref name="maxBytes"/>.</summary>
    public static FileStream OpenRead(string path, long maxBytes)
    {
        RequireRegularFile(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        try
        {
            // Checked again on the open handle: the path may have been swapped since the check above.
            if (!stream.CanSeek) throw new RefusedException("it is not a regular file (it cannot seek)");
            if (stream.Length > maxBytes) throw new RefusedException($"it holds {stream.Length:N0} bytes, more than the limit of {maxBytes:N0}", tooLarge: true);
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <see cref="OpenRead"/> for readers whose contract is <see cref="InvalidDataException"/> (checkpoints, configurations,
    /// ONNX files): a refused path becomes one that names the file.
    /// </summary>
    public static FileStream OpenReadData(string path, long maxBytes = long.MaxValue) => AsData(path, () => OpenRead(path, maxBytes));

    /// <summary><see cref="ReadAllBytes"/> with a refusal reported as <see cref="InvalidDataException"/> naming the file.</summary>
    public static byte[] ReadAllBytesData(string path, long maxBytes) => AsData(path, () => ReadAllBytes(path, maxBytes));

    private static T AsData<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (RefusedException e)
        {
            throw new InvalidDataException($"'{path}' cannot be read: {e.Message}.", e);
        }
    }

    /// <summary>Reads a whole regular file of at most <paramref name="maxBytes"/> bytes (a file that grows while it is read is cut off at the limit and refused).</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes)
    {
        using var stream = OpenRead(path, maxBytes);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        // A file that grew after the length was taken (or a device that reports length 0) must not be read past the limit.
        if (stream.ReadByte() >= 0 && checked(bytes.Length + 1L) > maxBytes)
            throw new RefusedException($"it grew past the limit of {maxBytes:N0} bytes while it was read", tooLarge: true);
        return bytes;
    }

    // ------------------------------------------------------------------ file type

    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFSOCK = 0xC000;

    /// <summary>Null for a regular file (or where the type cannot be asked, e.g. Windows); otherwise what it is.</summary>
    private static string? FileKind(string path)
    {
        if (OperatingSystem.IsWindows()) return null;
        int mode;
        try
        {
            // .NET's own native shim (shipped with every runtime): stat(2) with the mode's file-type bits normalised to
            // the POSIX values on every Unix, so no per-platform struct stat layout is needed here.
            Span<byte> status = stackalloc byte[256];
            if (Stat(path, status) != 0)
            {
                if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
                return null;
            }
            mode = BitConverter.ToInt32(status[4..]);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null; // the size cap still holds
        }
        return (mode & S_IFMT) switch
        {
            S_IFREG => null,
            S_IFIFO => "FIFO (named pipe)",
            S_IFCHR => "character device",
            S_IFBLK => "block device",
            S_IFSOCK => "socket",
            _ => "special file",
        };
    }

    private static unsafe int Stat(string path, Span<byte> status)
    {
        fixed (byte* p = status) return SystemNativeStat(path, p);
    }

    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_Stat", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int SystemNativeStat(string path, byte* status);
}
