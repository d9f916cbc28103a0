namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// A temporary file this library wrote and must delete: the ONNX model an in-process stage hands to ML.NET's
/// <c>ApplyOnnxModel</c> (which only takes thread settings with a file, and reads the file again when the model is
/// saved). Deleted on dispose, by the finalizer, or with the
/// process's temporary folder (<see cref="IO.BeitTempFiles"/>) at exit or by the next process's sweep.
/// </summary>
internal sealed class OwnedTempFile : IDisposable
{
    private int _deleted;

    private OwnedTempFile(string path) => Path = path;

    ~OwnedTempFile() => Delete();

    public string Path { get; }

    public static OwnedTempFile Write(byte[] bytes, string extension)
    {
        string path = IO.BeitTempFiles.NewFile(extension);
        try
        {
            File.WriteAllBytes(path, bytes);
        }
        catch
        {
            try { File.Delete(path); } catch (IOException) { }
            throw;
        }
        return new OwnedTempFile(path);
    }

    public void Dispose()
    {
        Delete();
        GC.SuppressFinalize(this);
    }

    private void Delete()
    {
        if (Interlocked.Exchange(ref _deleted, 1) != 0) return;
        try
        {
            File.Delete(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Still open elsewhere (Windows): nothing more can be done here; the OS temp cleaner will get it.
        }
    }
}
