namespace Beit.Tests;

/// <summary>Locates the reference fixtures committed under <c>test/fixtures/hf-beit</c>.</summary>
internal static class Fixtures
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "test", "fixtures", "hf-beit");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("test/fixtures/hf-beit not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The <c>hf-beit</c> fixture folder.</summary>
    public static string Root => s_root.Value;

    /// <summary>A tiny checkpoint folder, e.g. <c>cls_relpos</c>.</summary>
    public static string Tiny(string name) => Path.Combine(Root, "tiny", name);

    /// <summary>A preprocessing fixture file, e.g. <c>chelsea.png</c>.</summary>
    public static string Preproc(string name) => Path.Combine(Root, "preproc", name);

    /// <summary>A training fixture folder, e.g. <c>cls_relpos_adamw</c>.</summary>
    public static string Train(string name) => Path.Combine(Root, "train", name);

    /// <summary>A file of the PyTorch bicubic references (<c>test/fixtures/torch-bicubic</c>, made by its <c>make_reference.py</c>).</summary>
    public static string TorchBicubic(string name) => Path.Combine(Root, "..", "torch-bicubic", name);
}
