namespace Beit.Tests;

/// <summary>
/// A fresh empty folder under the system temp path (prefix <c>beit-tests-</c>, so a leak is recognisable), deleted with
/// everything in it on <see cref="Dispose"/>: <c>using var dir = new TempDir();</c>.
/// </summary>
internal sealed class TempDir : IDisposable
{
    /// <summary>Creates the folder.</summary>
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "beit-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    /// <summary>The folder's full path.</summary>
    public string Path { get; }

    /// <summary>A path inside the folder.</summary>
    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Lets the folder stand where a path string is expected.</summary>
    public static implicit operator string(TempDir dir) => dir.Path;

    /// <inheritdoc/>
    public override string ToString() => Path;

    /// <summary>Deletes the folder and its contents; a folder already gone is fine.</summary>
    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
