using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Beit.Hub;

/// <summary>
/// A Hugging Face Hub model id, <c>org/name</c> or <c>org/name@revision</c>. The rules are huggingface_hub's
/// <c>validate_repo_id</c> (ASCII letters, digits, <c>-</c>, <c>_</c>, <c>.</c>; at most 96 characters a part; no
/// <c>--</c> or <c>..</c>, which the cache's <c>models--org--name</c> folder naming relies on), and a revision is a
/// branch, a tag or a 40-hex commit made of git ref characters. Both become cache path segments, so nothing that could
/// climb out of the cache (<c>..</c>, a rooted path, a backslash) parses.
/// </summary>
internal sealed partial record HubModelId(string Repository, string? Revision)
{
    /// <summary>The revision Hugging Face resolves when none is given.</summary>
    public const string DefaultRevision = "main";

    /// <summary>The revision to resolve (<see cref="DefaultRevision"/> when none was given).</summary>
    public string EffectiveRevision => Revision ?? DefaultRevision;

    /// <summary>The cache folder of the repository, <c>models--org--name</c> (huggingface_hub's <c>repo_folder_name</c>).</summary>
    public string CacheFolderName => "models--" + Repository.Replace("/", "--", StringComparison.Ordinal);

    // huggingface_hub: r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$" — restricted to ASCII, org required.
    [GeneratedRegex(@"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex Part();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex RevisionSegment();

    [GeneratedRegex(@"^[0-9a-f]{40}$", RegexOptions.CultureInvariant)]
    private static partial Regex Commit();

    /// <summary>Whether <paramref name="revision"/> is a full commit hash (lower-case hex, as the Hub writes it).</summary>
    public static bool IsCommitHash(string? revision) => revision != null && Commit().IsMatch(revision);

    /// <summary>Parses <paramref name="text"/>; false (and no exception) for anything that is not a valid id.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out HubModelId? id)
    {
        id = null;
        if (string.IsNullOrEmpty(text) || text.Length > 512) return false;
        string repository = text, revision = null!;
        int at = text.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            repository = text[..at];
            revision = text[(at + 1)..];
            if (!IsValidRevision(revision)) return false;
        }
        var parts = repository.Split('/');
        if (parts.Length != 2 || !parts.All(p => Part().IsMatch(p)) || repository.Contains("--", StringComparison.Ordinal) ||
            repository.Contains("..", StringComparison.Ordinal) || repository.EndsWith(".git", StringComparison.OrdinalIgnoreCase))
            return false;
        id = new HubModelId(repository, at >= 0 ? revision : null);
        return true;
    }

    /// <summary>
    /// A branch or tag name (git's <c>check-ref-format</c> rules, narrowed to safe characters; <c>refs/pr/1</c> is
    /// allowed) or a commit hash. Each <c>/</c>-separated segment becomes a folder under <c>refs/</c>.
    /// </summary>
    public static bool IsValidRevision(string? revision)
    {
        if (string.IsNullOrEmpty(revision) || revision.Length > 255) return false;
        if (revision.Contains("..", StringComparison.Ordinal)) return false;
        foreach (var segment in revision.Split('/'))
        {
            if (!RevisionSegment().IsMatch(segment) || segment.EndsWith('.') ||
                segment.EndsWith(".lock", StringComparison.Ordinal)) return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => Revision is null ? Repository : $"{Repository}@{Revision}";
}
