using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Cli.Serving;

/// <summary>Settings of <c>beit serve</c>.</summary>
internal sealed class BeitServerOptions
{
    public const long DefaultMaxBodyBytes = 32L << 20;

    public required string Model { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 5000;
    public int MaxBatch { get; init; } = 1;
    public long MaxBodyBytes { get; init; } = DefaultMaxBodyBytes;
    public int MaxConcurrency { get; init; } = Environment.ProcessorCount;

    /// <summary>How long SIGTERM waits for in-flight requests before the host stops anyway.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// The HTTP front of <see cref="BeitServingModel"/>: an ASP.NET Core minimal API on Kestrel. Every handler reads the
/// body with a hard size limit, hands the bytes to the model, and turns every expected failure into a 4xx JSON
/// <c>{"error": "..."}</c>; only a bug is a 500. The web page at <c>/</c> is embedded in this assembly.
/// </summary>
internal static class BeitServer
{
    public const int DefaultTopK = 5;

    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>Loads the model, serves until the host is stopped (SIGTERM, Ctrl+C), drains, then disposes the model.</summary>
    public static async Task<int> RunAsync(BeitServerOptions options, TextWriter stdout, CancellationToken cancellationToken)
    {
        var address = ParseHost(options.Host);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var model = BeitServingModel.Load(options.Model, new BeitServingOptions
        {
            MaxBatch = options.MaxBatch,
            MaxConcurrency = options.MaxConcurrency,
            MaxImageBytes = options.MaxBodyBytes,
        });
        var app = Build(model, options, address);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var url = app.Urls.First();
        // One line on stdout that scripts (and the tests) read for the address, e.g. with --port 0.
        stdout.WriteLine($"beit serve: listening on {url} ({BeitServingModel.Name(model.Task)}, {model.Labels.Count} labels, " +
                         $"{model.InputSize.Height}x{model.InputSize.Width}, {model.Precision}, max batch {options.MaxBatch}, " +
                         $"{options.MaxConcurrency} engines; loaded in {clock.Elapsed.TotalSeconds:F1} s)");
        stdout.Flush();
        await app.WaitForShutdownAsync().ConfigureAwait(false);
        // The host has drained in-flight requests by now; 'using' disposes the model after it.
        await app.DisposeAsync().ConfigureAwait(false);
        Console.Error.WriteLine("beit serve: stopped.");
        return 0;
    }

    private static IPAddress ParseHost(string host)
    {
        if (host == "localhost") return IPAddress.Loopback;
        if (IPAddress.TryParse(host.Trim('[', ']'), out var ip)) return ip;
        throw new ArgumentException($"--host '{host}' is not an IP address (or 'localhost').");
    }

    /// <summary>The web application, not yet started.</summary>
    public static WebApplication Build(BeitServingModel model, BeitServerOptions options, IPAddress address)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        // Warnings and errors on stderr; stdout stays for the one "listening on" line.
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes + MultipartSlack;
            k.Listen(address, options.Port);
        });
        builder.Services.Configure<FormOptions>(o =>
        {
            o.MultipartBodyLengthLimit = options.MaxBodyBytes + MultipartSlack;
            o.ValueCountLimit = 16;
            o.MemoryBufferThreshold = 1 << 16;
        });
        builder.Services.AddOpenApi();
        var app = builder.Build();
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();

        // Expected failures become 4xx JSON here, without a log line or a stack trace (they are the client's); only a
        // bug is logged, and answered 500.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (Exception e) when (!context.Response.HasStarted)
            {
                if (context.RequestAborted.IsCancellationRequested) return; // the client is gone
                var (status, message) = Classify(e);
                if (status >= 500) app.Logger.LogError(e, "Unexpected error on {Method} {Path}", context.Request.Method, context.Request.Path);
                await WriteError(context, status, message).ConfigureAwait(false);
            }
        });
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            if (!http.Response.HasStarted && http.Response.ContentLength is null or 0)
                await WriteError(http, http.Response.StatusCode, $"{http.Request.Method} {http.Request.Path}: {Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(http.Response.StatusCode)}.").ConfigureAwait(false);
        });
        app.MapOpenApi();

        app.MapGet("/", () => Asset("index.html", "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/assets/{name}", (string name) => Asset(name, null)).ExcludeFromDescription();
        app.MapGet("/healthz", () => Results.Json(new { status = "ok" }))
            .WithSummary("Liveness: 200 while the process serves HTTP.");
        app.MapGet("/readyz", () => lifetime.ApplicationStopping.IsCancellationRequested
                ? Results.Json(new { status = "stopping" }, statusCode: 503)
                : Results.Json(new { status = "ready" }))
            .WithSummary("Readiness: 200 once the model is loaded, 503 from SIGTERM on (a load balancer stops sending).");
        app.MapGet("/v1/model", () => Results.Json(new ModelInfo(BeitServingModel.Name(model.Task), model.Labels, new Size(model.InputSize.Height, model.InputSize.Width),
                model.Precision, model.FeatureSize, options.MaxBatch, options.MaxConcurrency, options.MaxBodyBytes, Path.GetFileName(model.Source.TrimEnd('/'))), s_json))
            .WithSummary("The served model: task, labels, input size (height, width), precision.")
            .Produces<ModelInfo>();

        app.MapPost("/v1/predict", async (HttpContext context) =>
        {
            int k = TopK(context.Request, model.Labels.Count);
            Require(model, BeitScoringTask.ImageClassification, "/v1/predict");
            var image = await ReadImage(context.Request, options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            var probabilities = await model.ClassifyAsync(image, context.RequestAborted).ConfigureAwait(false);
            return Results.Json(new PredictResponse(Top(model.Labels, probabilities, k)), s_json);
        }).WithSummary("Classify an image: the top-k labels with probabilities (?top_k=, default 5), as one element of 'beit predict --json'.")
            .Accepts<IFormFile>("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "application/octet-stream", "multipart/form-data")
            .Produces<PredictResponse>().Produces<ErrorResponse>(400).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415);

        app.MapPost("/v1/segment", async (HttpContext context) =>
        {
            string format = context.Request.Query["format"].ToString() is { Length: > 0 } f ? f : "json";
            if (format is not ("json" or "png" or "overlay"))
                throw new RequestException(400, $"format must be json, png or overlay, not '{Truncate(format)}'.");
            Require(model, BeitScoringTask.SemanticSegmentation, "/v1/segment");
            var image = await ReadImage(context.Request, options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            var result = await model.SegmentAsync(image, context.RequestAborted).ConfigureAwait(false);
            return format switch
            {
                "png" => Results.Bytes(SegmentationImages.LabelMapPng(result, model.Labels.Count), "image/png"),
                "overlay" => Results.Bytes(SegmentationImages.OverlayPng(result), "image/png"),
                _ => Results.Json(SegmentationImages.Summary(result, model.Labels), s_json),
            };
        }).WithSummary("Segment an image: per-class pixel fractions (JSON), the label map (?format=png) or the image with the classes blended over it (?format=overlay).")
            .Accepts<IFormFile>("image/png", "image/jpeg", "application/octet-stream", "multipart/form-data")
            .Produces<SegmentResponse>().Produces(200, contentType: "image/png").Produces<ErrorResponse>(400).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415);

        app.MapPost("/v1/features", async (HttpContext context) =>
        {
            Require(model, BeitScoringTask.Features, "/v1/features");
            var image = await ReadImage(context.Request, options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            var features = await model.FeaturesAsync(image, context.RequestAborted).ConfigureAwait(false);
            return Results.Json(new FeaturesResponse(features), s_json);
        }).WithSummary("Embed an image: the pooled features (hidden_size floats).")
            .Accepts<IFormFile>("image/png", "image/jpeg", "application/octet-stream", "multipart/form-data")
            .Produces<FeaturesResponse>().Produces<ErrorResponse>(400).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415);
        AttentionEndpoint.Map(app, model, options, ReadImage);
        return app;
    }

    /// <summary>Room for the multipart boundaries and headers around an image of the largest accepted size.</summary>
    private const long MultipartSlack = 16 << 10;

    // ---------------------------------------------------------------- responses

    /// <summary>A height and width.</summary>
    public sealed record Size(int Height, int Width);

    /// <summary><c>GET /v1/model</c>.</summary>
    public sealed record ModelInfo(string Task, IReadOnlyList<string> Labels, Size InputSize, string Precision, int FeatureSize,
        int MaxBatch, int MaxConcurrency, long MaxBodyBytes, string Model);

    /// <summary>One label and its probability.</summary>
    public sealed record Prediction(string Label, float Probability);

    /// <summary><c>POST /v1/predict</c>: one element of <c>beit predict --json</c> without its <c>source</c>.</summary>
    public sealed record PredictResponse(IReadOnlyList<Prediction> Predictions);

    /// <summary><c>POST /v1/features</c>.</summary>
    public sealed record FeaturesResponse(float[] Features);

    /// <summary>Any 4xx or 5xx.</summary>
    public sealed record ErrorResponse(string Error);

    /// <summary>The k most probable labels, ties in label order (as <c>beit predict</c> ranks them).</summary>
    internal static List<Prediction> Top(IReadOnlyList<string> labels, float[] probabilities, int k) =>
        probabilities.Select((p, i) => new Prediction(labels[i], p)).OrderByDescending(x => x.Probability).Take(k).ToList();

    private static int TopK(HttpRequest request, int labelCount)
    {
        var values = request.Query["top_k"];
        if (values.Count == 0) return Math.Min(DefaultTopK, Math.Max(1, labelCount));
        if (values.Count > 1 || !int.TryParse(values[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int k) || k < 1)
            throw new RequestException(400, $"top_k must be one whole number of at least 1, not '{Truncate(values.ToString())}'.");
        return Math.Min(k, labelCount);
    }

    private static void Require(BeitServingModel model, BeitScoringTask task, string endpoint)
    {
        if (model.Task != task)
            throw new RequestException(400, $"{endpoint} needs a {BeitServingModel.Name(task)} model; this server's model does {BeitServingModel.Name(model.Task)} " +
                                            $"(use {Endpoint(model.Task)}).");
    }

    private static string Endpoint(BeitScoringTask task) => task switch
    {
        BeitScoringTask.ImageClassification => "POST /v1/predict",
        BeitScoringTask.SemanticSegmentation => "POST /v1/segment",
        _ => "POST /v1/features",
    };

    // ---------------------------------------------------------------- request bodies

    /// <summary>The image bytes: the whole body for <c>image/*</c> or <c>application/octet-stream</c>, or the multipart field <c>image</c>.</summary>
    private static async Task<byte[]> ReadImage(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        if (request.ContentLength > maxBytes + (request.HasFormContentType ? MultipartSlack : 0))
            throw new RequestException(413, $"the body has {request.ContentLength:N0} bytes, more than the limit of {maxBytes:N0} (--max-body-bytes).");
        string type = request.ContentType ?? "";
        if (request.HasFormContentType)
        {
            if (!type.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase))
                throw new RequestException(415, "a form must be multipart/form-data with the image in the field 'image'.");
            var form = await request.ReadFormAsync(ct).ConfigureAwait(false);
            var file = form.Files.GetFile("image") ?? throw new RequestException(400, "the multipart form has no file field named 'image'.");
            if (file.Length > maxBytes)
                throw new RequestException(413, $"the image has {file.Length:N0} bytes, more than the limit of {maxBytes:N0} (--max-body-bytes).");
            var bytes = new byte[file.Length];
            await using var stream = file.OpenReadStream();
            await stream.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
            return bytes;
        }
        if (!(type.StartsWith("image/", StringComparison.OrdinalIgnoreCase) || type.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase)))
            throw new RequestException(415, $"send the image as the body with Content-Type image/* (or application/octet-stream), or as the multipart field 'image'; got '{Truncate(type)}'.");
        return await ReadBody(request.Body, maxBytes, ct).ConfigureAwait(false);
    }

    /// <summary>Reads at most <paramref name="maxBytes"/>, growing the buffer as bytes arrive (a declared length is not trusted).</summary>
    private static async Task<byte[]> ReadBody(Stream body, long maxBytes, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > maxBytes)
                throw new RequestException(413, $"the body has more than the limit of {maxBytes:N0} bytes (--max-body-bytes).");
            buffer.Write(chunk, 0, n);
        }
        if (buffer.Length == 0) throw new RequestException(400, "the body is empty; send an image.");
        return buffer.ToArray();
    }

    // ---------------------------------------------------------------- errors

    /// <summary>A client error with its HTTP status.</summary>
    internal sealed class RequestException(int status, string message) : Exception(message)
    {
        public int Status { get; } = status;
    }

    private static (int Status, string Message) Classify(Exception? error)
    {
        for (var e = error; e != null; e = e.InnerException)
        {
            switch (e)
            {
                case RequestException r: return (r.Status, r.Message);
                case BadHttpRequestException b: return (b.StatusCode, b.Message);
                case BeitInputException i: return (400, $"not a usable image: {i.Problem}");
                case Microsoft.ML.Beit.Processing.ImageDecodingException d: return (400, $"not a usable image: {d.Message}");
                case OperationCanceledException: return (499, "the request was cancelled.");
            }
        }
        return (500, "unexpected error (a bug; see the server's log).");
    }

    private static Task WriteError(HttpContext context, int status, string message)
    {
        if (context.Response.HasStarted) return Task.CompletedTask;
        context.Response.Clear();
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new ErrorResponse(message), s_json);
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "…";

    // ---------------------------------------------------------------- the page

    private static readonly Assembly s_assembly = typeof(BeitServer).Assembly;

    private static IResult Asset(string name, string? contentType)
    {
        // Only the embedded files are served: the name is a key, never a path.
        string resource = "Beit.Cli.Serving.wwwroot." + name;
        if (name.Contains('/') || name.Contains('\\') || s_assembly.GetManifestResourceInfo(resource) == null)
            return Results.Json(new ErrorResponse($"no asset '{Truncate(name)}'."), s_json, statusCode: 404);
        contentType ??= Path.GetExtension(name) switch
        {
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".html" => "text/html; charset=utf-8",
            ".svg" => "image/svg+xml",
            _ => "application/octet-stream",
        };
        return Results.Stream(s_assembly.GetManifestResourceStream(resource)!, contentType);
    }
}
