using System.Globalization;
using System.Net;
using System.Net.Http.Headers;

namespace Microsoft.ML.Beit.Hub;

/// <summary>What a <c>HEAD …/resolve/…</c> says about one file (huggingface_hub's <c>HfFileMetadata</c>).</summary>
/// <param name="Commit">The commit the revision resolved to (<c>X-Repo-Commit</c>).</param>
/// <param name="Etag">The blob name: <c>X-Linked-Etag</c> (an LFS file's sha256) or <c>ETag</c> (git's sha1), unquoted.</param>
/// <param name="Size"><c>X-Linked-Size</c> or <c>Content-Length</c>.</param>
/// <param name="Location">Where to <c>GET</c> the content: the storage host an LFS file redirects to, else the resolve URL.</param>
internal sealed record HubFileMetadata(string Commit, string Etag, long Size, Uri Location);

/// <summary>
/// huggingface_hub's download protocol over one shared <see cref="HttpClient"/>: <c>HEAD</c> for metadata (following
/// only relative redirects, as <c>_httpx_follow_relative_redirects</c> does), then a resumable <c>GET</c>. Every header
/// that becomes a path or a size is validated before use; the token goes to the endpoint's host only.
/// </summary>
internal sealed class HubHttp
{
    private const int MaxRedirects = 5;
    private const int MaxAttempts = 5;

    // Redirects are handled here (the client must not carry Authorization to a storage host); no decompression, so
    // Content-Length is the size of the bytes on disk (huggingface_hub sends Accept-Encoding: identity for the same reason).
    private static readonly HttpClient s_client = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
        DefaultRequestHeaders =
        {
            UserAgent = { new ProductInfoHeaderValue("beit-mlnet", "0.1"), new ProductInfoHeaderValue("(huggingface_hub-compatible)") },
            AcceptEncoding = { new StringWithQualityHeaderValue("identity") },
        },
    };

    private readonly BeitHubOptions _options;
    private readonly HubModelId _id;

    public HubHttp(BeitHubOptions options, HubModelId id)
    {
        _options = options;
        _id = id;
        if (options.Token is string token && (token.Length > 1024 || token.Any(c => c is <= ' ' or > '~')))
            throw new ArgumentException("The Hugging Face token (HF_TOKEN or the token file) holds characters an HTTP header cannot carry.", nameof(options));
    }

    /// <summary>The largest file we accept: BEiT-large's weights are 1.2 GB; sharded checkpoints split further.</summary>
    public const long MaxFileBytes = 64L << 30;

    /// <summary>JSON files are parsed in memory.</summary>
    public const long MaxJsonBytes = 16L << 20;

    public Uri ResolveUrl(string revision, string file) =>
        new($"{_options.Endpoint.AbsoluteUri.TrimEnd('/')}/{_id.Repository}/resolve/{Uri.EscapeDataString(revision)}/{file}");

    /// <summary>
    /// The metadata of <paramref name="file"/> at <paramref name="revision"/>, or null for an absent optional file
    /// (after which <see cref="LastMissingCommit"/> holds the commit the Hub reported, if any).
    /// </summary>
    /// <exception cref="FileNotFoundException">404: the message names the repository, revision and file.</exception>
    /// <exception cref="UnauthorizedAccessException">401 or 403: the message mentions HF_TOKEN.</exception>
    /// <exception cref="HttpRequestException">The Hub could not be reached.</exception>
    public async Task<HubFileMetadata?> HeadAsync(string revision, string file, bool optional, CancellationToken ct)
    {
        var url = ResolveUrl(revision, file);
        for (int redirects = 0; ; redirects++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.NetworkTimeout);
            using var request = new HttpRequestMessage(HttpMethod.Head, url);
            Authorize(request, url);
            HttpResponseMessage response;
            try
            {
                response = await s_client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
            {
                throw new HttpRequestException($"{url} did not answer within {_options.NetworkTimeout.TotalSeconds:F0} s.", e);
            }
            using (response)
            {
                int status = (int)response.StatusCode;
                if (status is >= 300 and < 400 && response.Headers.Location is { IsAbsoluteUri: false } relative)
                {
                    // A renamed repository: the Hub answers with a relative redirect to the new name.
                    if (redirects >= MaxRedirects) throw new IOException($"{url} redirected more than {MaxRedirects} times.");
                    url = new Uri(url, relative);
                    continue;
                }
                return Interpret(response, url, revision, file, optional);
            }
        }
    }

    private HubFileMetadata? Interpret(HttpResponseMessage response, Uri url, string revision, string file, bool optional)
    {
        int status = (int)response.StatusCode;
        string? errorCode = Header(response, "X-Error-Code");
        string what = $"'{file}' of the Hugging Face model '{_id.Repository}' at revision '{revision}'";
        if (status is 401 or 403)
            throw new UnauthorizedAccessException(
                $"The Hugging Face Hub refused {what} (HTTP {status}{(errorCode is null ? "" : ", " + errorCode)}). The repository may be private or gated, " +
                $"or may not exist: {(_options.Token is null ? "set HF_TOKEN to an access token that can read it" : "check that the token in HF_TOKEN can read it")} " +
                "(or run `huggingface-cli login`).");
        if (status == 404)
        {
            if (optional && errorCode is null or "EntryNotFound")
            {
                LastMissingCommit = ValidCommit(Header(response, "X-Repo-Commit"));
                return null;
            }
            string reason = errorCode switch
            {
                "RepoNotFound" => $"the repository '{_id.Repository}' does not exist",
                "RevisionNotFound" => $"the repository '{_id.Repository}' has no revision '{revision}'",
                _ => $"the repository '{_id.Repository}' has no file '{file}' at revision '{revision}'",
            };
            throw new FileNotFoundException($"The Hugging Face Hub has no {what}: {reason} (HTTP 404, {url}).", file);
        }
        if (status is < 200 or >= 400)
            throw new HttpRequestException($"The Hugging Face Hub answered HTTP {status} for {what} ({url}).", null, response.StatusCode);

        string commit = ValidCommit(Header(response, "X-Repo-Commit"))
            ?? throw new InvalidDataException($"{url}: the answer has no valid X-Repo-Commit header (40 hex digits); is HF_ENDPOINT a Hugging Face Hub?");
        string etag = Unquote(Header(response, "X-Linked-Etag") ?? response.Headers.ETag?.ToString())
            ?? throw new InvalidDataException($"{url}: the answer has no ETag, so the file cannot be cached.");
        if (!HubCache.IsValidEtag(etag)) throw new InvalidDataException($"{url}: ETag '{Truncate(etag)}' is not a hex digest.");
        string? sizeText = Header(response, "X-Linked-Size") ?? response.Content.Headers.ContentLength?.ToString(CultureInfo.InvariantCulture);
        if (!long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out long size))
            throw new InvalidDataException($"{url}: the answer declares no valid size (X-Linked-Size or Content-Length).");
        long limit = file.EndsWith(".json", StringComparison.Ordinal) ? MaxJsonBytes : MaxFileBytes;
        if (size > limit) throw new InvalidDataException($"{url}: '{file}' declares {size} bytes, more than the {limit} allowed.");
        var location = status is >= 300 and < 400 && response.Headers.Location is { IsAbsoluteUri: true } absolute ? absolute : url;
        if (location.Scheme != Uri.UriSchemeHttps && location.Scheme != Uri.UriSchemeHttp)
            throw new InvalidDataException($"{url}: redirects to '{Truncate(location.ToString())}', which is not http(s).");
        return new HubFileMetadata(commit, etag, size, location);
    }

    /// <summary>The commit a 404 for an optional file reported (for the <c>.no_exist</c> marker), or null.</summary>
    public string? LastMissingCommit { get; private set; }

    /// <summary>
    /// Downloads <paramref name="metadata"/>'s content into <paramref name="partial"/>, resuming what is already there with
    /// <c>Range: bytes=N-</c> and retrying dropped connections; never writes beyond the declared size.
    /// </summary>
    public async Task DownloadAsync(HubFileMetadata metadata, string file, string partial, IProgress<BeitDownloadProgress>? progress, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await DownloadOnceAsync(metadata, file, partial, progress, ct).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested && attempt >= MaxAttempts)
            {
                throw new IOException($"The download of '{file}' of '{_id.Repository}' stalled (no data for {_options.NetworkTimeout.TotalSeconds:F0} s), {MaxAttempts} times.", e);
            }
            catch (Exception e) when (attempt < MaxAttempts && !ct.IsCancellationRequested &&
                                      e is IOException or HttpRequestException or OperationCanceledException)
            {
                // A dropped connection or a stall: what reached the disk stays, and the next attempt resumes from it.
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), ct).ConfigureAwait(false);
            }
        }
    }

    private async Task DownloadOnceAsync(HubFileMetadata metadata, string file, string partial, IProgress<BeitDownloadProgress>? progress, CancellationToken ct)
    {
        long size = metadata.Size;
        using var stream = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        long have = stream.Length;
        if (have > size)
        {
            stream.SetLength(0);
            have = 0;
        }
        if (have == size) return;

        var url = metadata.Location;
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
        HttpResponseMessage? response = null;
        try
        {
            for (int redirects = 0; ; redirects++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                Authorize(request, url);
                if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
                stall.CancelAfter(_options.NetworkTimeout);
                response = await s_client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
                if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } next)
                {
                    if (redirects >= MaxRedirects) throw new IOException($"{metadata.Location} redirected more than {MaxRedirects} times.");
                    url = next.IsAbsoluteUri ? next : new Uri(url, next);
                    response.Dispose();
                    response = null;
                    continue;
                }
                break;
            }

            int status = (int)response.StatusCode;
            if (status == 416 && have > 0)
            {
                // The server has nothing past what we hold: start again from zero.
                stream.SetLength(0);
                throw new IOException($"{url}: the server refused to resume '{file}' at byte {have} (HTTP 416).");
            }
            if (status is 401 or 403)
                throw new UnauthorizedAccessException($"Downloading '{file}' of '{_id.Repository}' from {url.GetLeftPart(UriPartial.Path)} was refused (HTTP {status}); set HF_TOKEN to a token that can read it.");
            if (status is not 200 and not 206)
                throw new HttpRequestException($"Downloading '{file}' of '{_id.Repository}' from {url.GetLeftPart(UriPartial.Path)} failed with HTTP {status}.", null, response.StatusCode);
            if (status == 206)
            {
                var range = response.Content.Headers.ContentRange;
                if (range?.From != have || (range.Length is long total && total != size))
                    throw new InvalidDataException($"{url.GetLeftPart(UriPartial.Path)}: Content-Range '{range}' does not continue '{file}' at byte {have} of {size}.");
            }
            else if (have > 0)
            {
                // The server ignored Range and sends the whole file.
                stream.SetLength(0);
                have = 0;
            }
            if (response.Content.Headers.ContentLength is long length && length != size - have)
                throw new InvalidDataException($"{url.GetLeftPart(UriPartial.Path)}: Content-Length {length} for '{file}' does not match the {size - have} bytes left of the declared {size}.");

            stream.Seek(have, SeekOrigin.Begin);
            using var body = await response.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
            var buffer = new byte[1 << 16];
            long lastReport = -1;
            while (true)
            {
                stall.CancelAfter(_options.NetworkTimeout);
                int n = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                if (n == 0) break;
                if (n > size - have)
                    throw new InvalidDataException($"{url.GetLeftPart(UriPartial.Path)} sent more than the {size} bytes declared for '{file}'.");
                await stream.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                have += n;
                if (progress != null && (have - lastReport >= 1 << 20 || have == size))
                {
                    progress.Report(new BeitDownloadProgress(_id.Repository, file, have, size));
                    lastReport = have;
                }
            }
            await stream.FlushAsync(ct).ConfigureAwait(false);
            if (have != size) throw new IOException($"The download of '{file}' ended at byte {have} of {size}.");
        }
        finally
        {
            response?.Dispose();
        }
    }

    // huggingface_hub sends the token to the endpoint only; requests (and we) drop it when a redirect changes host.
    private void Authorize(HttpRequestMessage request, Uri url)
    {
        if (_options.Token is string token && SameOrigin(url, _options.Endpoint))
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) &&
        string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static string? ValidCommit(string? value) => HubModelId.IsCommitHash(value) ? value : null;

    /// <summary>huggingface_hub's <c>_normalize_etag</c>: drop a weak <c>W/</c> prefix and the quotes.</summary>
    internal static string? Unquote(string? etag)
    {
        if (etag is null) return null;
        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal)) etag = etag[2..];
        return etag.Trim('"');
    }

    private static string Truncate(string s) => s.Length <= 80 ? s : s[..80] + "…";
}
