namespace Microsoft.ML.Beit.Hub;

/// <summary>Which files of a Hub checkpoint <see cref="BeitHub.Resolve"/> fetches.</summary>
[Flags]
public enum BeitHubFiles
{
    /// <summary><c>config.json</c>; it is always fetched, since its request also resolves the revision to a commit.</summary>
    Configuration = 1,
    /// <summary><c>preprocessor_config.json</c>, when the repository has one.</summary>
    Preprocessor = 2,
    /// <summary>
    /// The weights, by transformers' precedence: <c>model.safetensors</c>, else <c>model.safetensors.index.json</c> and
    /// its shards, else <c>pytorch_model.bin</c>, else <c>pytorch_model.bin.index.json</c> and its shards.
    /// </summary>
    Weights = 4,
    /// <summary>Everything a model needs: configuration, preprocessor configuration and weights.</summary>
    All = Configuration | Preprocessor | Weights,
}

/// <summary>
/// Where <see cref="BeitHub"/> downloads from and caches to. A new instance takes huggingface_hub's environment
/// variables, so Python and .NET share one cache: <c>HF_ENDPOINT</c>, <c>HF_HUB_CACHE</c> (else
/// <c>HUGGINGFACE_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, with <c>HF_HOME</c> defaulting to
/// <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>), <c>HF_TOKEN</c> (else the token file
/// <c>$HF_HOME/token</c> that <c>huggingface-cli login</c> writes) and <c>HF_HUB_OFFLINE</c>.
/// </summary>
public sealed class BeitHubOptions
{
    /// <summary>The Hub's default address.</summary>
    public static readonly Uri DefaultEndpoint = new("https://huggingface.co");

    /// <summary>Options from the environment variables (see the class remarks).</summary>
    public BeitHubOptions() : this(Environment.GetEnvironmentVariable)
    {
    }

    internal BeitHubOptions(Func<string, string?> env)
    {
        Endpoint = NonEmpty(env("HF_ENDPOINT")) is string e ? ParseEndpoint(e) : DefaultEndpoint;
        string home = ExpandUser(NonEmpty(env("HF_HOME"))
            ?? Path.Combine(NonEmpty(env("XDG_CACHE_HOME")) ?? Path.Combine(UserHome(), ".cache"), "huggingface"));
        CacheDirectory = ExpandUser(NonEmpty(env("HF_HUB_CACHE")) ?? NonEmpty(env("HUGGINGFACE_HUB_CACHE")) ?? Path.Combine(home, "hub"));
        Token = NonEmpty(env("HF_TOKEN")) ?? NonEmpty(env("HUGGING_FACE_HUB_TOKEN"))
            ?? ReadTokenFile(ExpandUser(NonEmpty(env("HF_TOKEN_PATH")) ?? Path.Combine(home, "token")));
        Offline = IsTrue(env("HF_HUB_OFFLINE"));
    }

    /// <summary>The Hub (or a mirror) to download from; <c>HF_ENDPOINT</c>, else <see cref="DefaultEndpoint"/>.</summary>
    public Uri Endpoint { get; set; }

    /// <summary>The huggingface_hub cache folder (see the class remarks for how the default is found).</summary>
    public string CacheDirectory { get; set; }

    /// <summary>An access token sent as <c>Authorization: Bearer</c> to the Hub (never to the storage host it redirects to); null sends none.</summary>
    public string? Token { get; set; }

    /// <summary>Use the cache only, never the network (<c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; set; }

    /// <summary>Which files to fetch (default: <see cref="BeitHubFiles.All"/>).</summary>
    public BeitHubFiles Files { get; set; } = BeitHubFiles.All;

    /// <summary>How long to wait for another thread or process downloading the same file.</summary>
    internal TimeSpan LockTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a request may wait for response headers, or a download for its next bytes (huggingface_hub's 10 s).</summary>
    internal TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Throws <see cref="ArgumentException"/> for settings no download can use.</summary>
    internal void Validate()
    {
        if (Endpoint is null || !Endpoint.IsAbsoluteUri || (Endpoint.Scheme != Uri.UriSchemeHttps && Endpoint.Scheme != Uri.UriSchemeHttp))
            throw new ArgumentException($"BeitHubOptions.Endpoint must be an absolute http(s) address such as {DefaultEndpoint}.", nameof(Endpoint));
        if (string.IsNullOrWhiteSpace(CacheDirectory))
            throw new ArgumentException("BeitHubOptions.CacheDirectory must name a folder.", nameof(CacheDirectory));
        if ((Files & BeitHubFiles.All) == 0 || (Files & ~BeitHubFiles.All) != 0)
            throw new ArgumentException($"BeitHubOptions.Files '{Files}' names no known file set.", nameof(Files));
    }

    /// <summary>huggingface_hub's <c>_is_true</c>: 1, ON, YES or TRUE, in any case.</summary>
    private static bool IsTrue(string? value) =>
        value?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify);

    private static string ExpandUser(string path) =>
        path == "~" ? UserHome() : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(UserHome(), path[2..]) : path;

    private static Uri ParseEndpoint(string value)
    {
        if (!Uri.TryCreate(value.TrimEnd('/'), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) ||
            !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
            throw new ArgumentException($"HF_ENDPOINT '{value}' is not an http(s) address such as {DefaultEndpoint}.");
        return uri;
    }

    // The token file holds one line; a file that is missing, unreadable or implausibly large means no token.
    private static string? ReadTokenFile(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.Length > 4096) return null;
            return NonEmpty(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>Progress of one file's download from the Hub.</summary>
/// <param name="Repository">The repository, <c>org/name</c>.</param>
/// <param name="FileName">The file in the repository, e.g. <c>model.safetensors</c>.</param>
/// <param name="BytesDownloaded">Bytes on disk so far (a resumed download starts at what was already there).</param>
/// <param name="TotalBytes">The file's size as the Hub declared it.</param>
public sealed record BeitDownloadProgress(string Repository, string FileName, long BytesDownloaded, long TotalBytes);
