using System.Text.RegularExpressions;
using Microsoft.ML.Beit;

namespace Beit.Tests.Docs;

/// <summary>README's "Public API (Microsoft.ML.Beit)" list is the assembly's public surface, one line per type.</summary>
public sealed partial class PublicApiTests
{
    private const string Heading = "### Public API (Microsoft.ML.Beit)";

    [Fact]
    public void ReadmeListsExactlyThePublicTypes()
    {
        string readme = File.ReadAllText(Path.GetFullPath(Path.Combine(Fixtures.Root, "..", "..", "..", "README.md")));
        int start = readme.IndexOf(Heading, StringComparison.Ordinal);
        Assert.True(start >= 0, $"README has no '{Heading}' section.");
        var section = readme[(start + Heading.Length)..].Split('\n').TakeWhile(l => !l.StartsWith('#')).ToList();
        var listed = section.Select(l => ListItem().Match(l)).Where(m => m.Success)
            .Select(m => GenericArguments().Replace(m.Groups[1].Value, g => "`" + (g.Value.Count(c => c == ',') + 1)))
            .ToList();
        Assert.Equal(listed.Count, listed.Distinct().Count());

        var exported = typeof(BeitConfig).Assembly.GetExportedTypes().Where(t => !t.IsNested).Select(t => t.FullName!).ToList();
        Assert.Empty(exported.Except(listed).Order());   // public but not in README
        Assert.Empty(listed.Except(exported).Order());   // in README but not public

        // Nested public types are only Options classes and BeitPipelines.ImageInput, named on their owner's line.
        var nested = typeof(BeitConfig).Assembly.GetExportedTypes().Where(t => t.IsNested).ToList();
        Assert.All(nested, t => Assert.Contains(t.Name, new[] { "Options", "ImageInput" }));
    }

    [GeneratedRegex(@"^- `([A-Za-z0-9_.]+(?:<[^>]+>)?)`")]
    private static partial Regex ListItem();

    [GeneratedRegex(@"<[^>]+>")]
    private static partial Regex GenericArguments();
}
