using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.ML.Beit.Attention;
using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Cli.Serving;

/// <summary>
/// <c>POST /v1/attention</c>: where the served model looks. The body is an image (as for <c>/v1/predict</c>); the answer
/// is the heat map over the image as a PNG (default), or <c>?format=json</c> the map over the patch grid. <c>?method=</c>
/// <c>rollout</c> (default) or <c>cls</c>, <c>?layer=</c> (0-based, default the last), as <c>beit explain</c>.
/// </summary>
/// <remarks>
/// The attention graph is built on the first request, from the same model argument (a checkpoint is exported with
/// attention outputs; a model.zip's graph is rewritten to expose them, see <see cref="BeitAttentionExplainer"/>), and
/// shared by every request after it; at most <see cref="BeitServerOptions.MaxConcurrency"/> run at once.
/// </remarks>
internal static class AttentionEndpoint
{
    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary><c>POST /v1/attention?format=json</c>.</summary>
    public sealed record AttentionResponse(string Method, int Layer, int Height, int Width, float[][] Map);

    public static void Map(WebApplication app, BeitServingModel model, BeitServerOptions options,
        Func<HttpRequest, long, CancellationToken, Task<byte[]>> readImage)
    {
        var explainer = new Lazy<BeitAttentionExplainer>(() => Directory.Exists(options.Model)
            ? BeitAttentionExplainer.FromCheckpoint(options.Model)
            : BeitAttentionExplainer.FromModelZip(options.Model), LazyThreadSafetyMode.ExecutionAndPublication);
        var slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            if (explainer.IsValueCreated) explainer.Value.Dispose();
        });
        var decoding = new ImageDecoderOptions { MaxPixels = model.Options.MaxPixels, MaxFileBytes = options.MaxBodyBytes };

        app.MapPost("/v1/attention", async (HttpContext context) =>
        {
            var query = context.Request.Query;
            string format = One(query, "format") ?? "png";
            if (format is not ("png" or "json")) throw new BeitServer.RequestException(400, $"format must be png or json, not '{Truncate(format)}'.");
            string methodName = One(query, "method") ?? "rollout";
            var method = methodName switch
            {
                "rollout" => BeitAttentionMethod.Rollout,
                "cls" => BeitAttentionMethod.Cls,
                _ => throw new BeitServer.RequestException(400, $"method must be rollout or cls, not '{Truncate(methodName)}'."),
            };
            int? layer = null;
            if (One(query, "layer") is { } l)
            {
                if (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed))
                    throw new BeitServer.RequestException(400, $"layer must be a whole number, not '{Truncate(l)}'.");
                layer = parsed;
            }
            var bytes = await readImage(context.Request, options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            var image = ImageDecoder.Decode(bytes, "the request body", decoding);
            BeitAttentionExplainer ready;
            try
            {
                ready = explainer.Value;
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException)
            {
                // Lazy caches the exception: every request gets the same answer.
                throw new BeitServer.RequestException(400, $"this model cannot show its attention: {e.Message}");
            }
            await slots.WaitAsync(context.RequestAborted).ConfigureAwait(false);
            BeitAttentionMaps maps;
            try
            {
                maps = ready.Explain(image);
            }
            finally
            {
                slots.Release();
            }
            int last = layer ?? maps.Layers - 1;
            if (last < 0 || last >= maps.Layers)
                throw new BeitServer.RequestException(400, $"layer must be between 0 and {maps.Layers - 1}, not {last}.");
            var map = maps.Map(method, last);
            if (format == "json")
            {
                var rows = Enumerable.Range(0, maps.Grid.Height).Select(r => map.AsSpan(r * maps.Grid.Width, maps.Grid.Width).ToArray()).ToArray();
                return Results.Json(new AttentionResponse(methodName, last, maps.Grid.Height, maps.Grid.Width, rows), s_json);
            }
            return Results.Bytes(BeitHeatMap.EncodePng(BeitHeatMap.Overlay(image, map, maps.Grid, ready.Processor)), "image/png");
        }).WithSummary("Where the model looks: attention rollout (?method=rollout, default) or one layer's CLS attention (?method=cls, ?layer=) " +
                       "as a heat map over the image (PNG), or ?format=json for the map over the patch grid, as 'beit explain'.")
            .Accepts<IFormFile>("image/png", "image/jpeg", "application/octet-stream", "multipart/form-data")
            .Produces(200, contentType: "image/png").Produces<AttentionResponse>().Produces<BeitServer.ErrorResponse>(400)
            .Produces<BeitServer.ErrorResponse>(413).Produces<BeitServer.ErrorResponse>(415);
    }

    private static string? One(IQueryCollection query, string name)
    {
        var values = query[name];
        if (values.Count == 0) return null;
        if (values.Count > 1) throw new BeitServer.RequestException(400, $"{name} is given {values.Count} times.");
        return values[0];
    }

    private static string Truncate(string? s) => s is null ? "" : s.Length <= 64 ? s : s[..64] + "…";
}
