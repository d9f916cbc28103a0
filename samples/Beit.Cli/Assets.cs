namespace Beit.Cli;

/// <summary>Paths of the data bundled with the tool (the embedded default of the main job).</summary>
internal static class Assets
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "assets");
}
