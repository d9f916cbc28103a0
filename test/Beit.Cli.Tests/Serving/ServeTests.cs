using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Processing;
using Beit.Tests.Estimators;
using Xunit.Abstractions;

namespace Beit.Tests.Serving;

/// <summary><c>beit serve</c> as a separate process on a free loopback port: every endpoint, bad input, concurrency.</summary>
[Trait("Category", "Slow")]
public sealed class ServeClassifierTests(ClassifierServer fixture, ITestOutputHelper output) : IClassFixture<ClassifierServer>
{
    private HttpClient Client => fixture.Server.Client;

    private static ByteArrayContent Image(string path, string type = "image/png")
    {
        var content = new ByteArrayContent(File.ReadAllBytes(path));
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response, HttpStatusCode expected)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode} {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>A 4xx whose body is exactly <c>{"error": "..."}</c>; returns the message.</summary>
    private static async Task<string> Error(HttpResponseMessage response, HttpStatusCode expected)
    {
        var json = await Json(response, expected);
        Assert.Equal(["error"], json.EnumerateObject().Select(p => p.Name));
        return json.GetProperty("error").GetString()!;
    }

    [Fact]
    public async Task PredictAnswersExactlyWhatBeitPredictJsonSays_RawBodyAndMultipart()
    {
        foreach (var path in ServeImages.Paths())
        {
            var raw = await Json(await Client.PostAsync("v1/predict", Image(path)), HttpStatusCode.OK);
            Assert.Equal(["predictions"], raw.EnumerateObject().Select(p => p.Name));
            Assert.Equal(fixture.Expected[path], ServeImages.Predictions(raw));

            using var form = new MultipartFormDataContent { { Image(path), "image", Path.GetFileName(path) } };
            var multipart = await Json(await Client.PostAsync("v1/predict", form), HttpStatusCode.OK);
            Assert.Equal(fixture.Expected[path], ServeImages.Predictions(multipart));
        }
    }

    [Fact]
    public async Task TopKSelectsThatManyAndClampsToTheLabelCount()
    {
        string path = Fixtures.Preproc("chelsea.png");
        var one = ServeImages.Predictions(await Json(await Client.PostAsync("v1/predict?top_k=1", Image(path)), HttpStatusCode.OK));
        Assert.Equal(fixture.Expected[path].Take(1), one);
        var three = ServeImages.Predictions(await Json(await Client.PostAsync("v1/predict?top_k=3", Image(path)), HttpStatusCode.OK));
        Assert.Equal(fixture.Expected[path].Take(3), three);
        // The tiny model has 5 labels: 1000 gives all 5, as beit predict --top-k 1000 does.
        var all = ServeImages.Predictions(await Json(await Client.PostAsync("v1/predict?top_k=1000", Image(path)), HttpStatusCode.OK));
        Assert.Equal(5, all.Count);
        Assert.Equal(ServeImages.PredictJson(fixture.Zip, 1000, [path])[path], all);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("x")]
    [InlineData("1.5")]
    [InlineData("")]
    [InlineData("99999999999999999999")]
    public async Task BadTopKIs400(string value)
    {
        var message = await Error(await Client.PostAsync($"v1/predict?top_k={Uri.EscapeDataString(value)}", Image(Fixtures.Preproc("thin.png"))), HttpStatusCode.BadRequest);
        Assert.Contains("top_k", message);
    }

    [Fact]
    public async Task BadBodiesAre4xxJsonNever500()
    {
        // Not an image.
        var notImage = new ByteArrayContent(Encoding.UTF8.GetBytes("hello, world"));
        notImage.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        Assert.Contains("not a usable image", await Error(await Client.PostAsync("v1/predict", notImage), HttpStatusCode.BadRequest));
        // A truncated PNG.
        var png = File.ReadAllBytes(Fixtures.Preproc("chelsea.png"));
        var truncated = new ByteArrayContent(png[..(png.Length / 2)]);
        truncated.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        Assert.Contains("not a usable image", await Error(await Client.PostAsync("v1/predict", truncated), HttpStatusCode.BadRequest));
        // Empty.
        var empty = new ByteArrayContent([]);
        empty.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        Assert.Contains("empty", await Error(await Client.PostAsync("v1/predict", empty), HttpStatusCode.BadRequest));
        // Not an image type.
        await Error(await Client.PostAsync("v1/predict", new StringContent("{}", Encoding.UTF8, "application/json")), HttpStatusCode.UnsupportedMediaType);
        // A form without the image field.
        using var form = new MultipartFormDataContent { { Image(Fixtures.Preproc("thin.png")), "picture", "thin.png" } };
        Assert.Contains("'image'", await Error(await Client.PostAsync("v1/predict", form), HttpStatusCode.BadRequest));
        // Too large, declared (Content-Length) and streamed (chunked, no length).
        var big = new byte[ClassifierServer.MaxBodyBytes + 1];
        png.CopyTo(big, 0);
        var declared = new ByteArrayContent(big);
        declared.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        await Error(await Client.PostAsync("v1/predict", declared), HttpStatusCode.RequestEntityTooLarge);
        var streamed = new StreamContent(new MemoryStream(big));
        streamed.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/predict") { Content = streamed })
        {
            request.Headers.TransferEncodingChunked = true;
            await Error(await Client.SendAsync(request), HttpStatusCode.RequestEntityTooLarge);
        }
        using var bigForm = new MultipartFormDataContent { { new ByteArrayContent(big), "image", "big.png" } };
        await Error(await Client.PostAsync("v1/predict", bigForm), HttpStatusCode.RequestEntityTooLarge);
        // The server still answers correctly afterwards.
        string path = Fixtures.Preproc("camera.png");
        Assert.Equal(fixture.Expected[path], ServeImages.Predictions(await Json(await Client.PostAsync("v1/predict", Image(path)), HttpStatusCode.OK)));
    }

    [Fact]
    public async Task TheWrongModelKindIs400NamingTheRightEndpoint()
    {
        var segment = await Error(await Client.PostAsync("v1/segment", Image(Fixtures.Preproc("thin.png"))), HttpStatusCode.BadRequest);
        Assert.Contains("semantic-segmentation", segment);
        Assert.Contains("/v1/predict", segment);
        var features = await Error(await Client.PostAsync("v1/features", Image(Fixtures.Preproc("thin.png"))), HttpStatusCode.BadRequest);
        Assert.Contains("features", features);
        await Error(await Client.PostAsync("v1/segment?format=jpeg", Image(Fixtures.Preproc("thin.png"))), HttpStatusCode.BadRequest);
        await Error(await Client.GetAsync("v1/nothing-here"), HttpStatusCode.NotFound);
        await Error(await Client.GetAsync("v1/predict"), HttpStatusCode.MethodNotAllowed);
        await Error(await Client.GetAsync("assets/..%2Fbeit.dll"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ModelHealthReadinessOpenApiAndThePage()
    {
        var model = await Json(await Client.GetAsync("v1/model"), HttpStatusCode.OK);
        Assert.Equal("image-classification", model.GetProperty("task").GetString());
        Assert.Equal(["cat", "dog", "bird", "fish", "horse"], model.GetProperty("labels").EnumerateArray().Select(l => l.GetString()));
        Assert.Equal(32, model.GetProperty("inputSize").GetProperty("height").GetInt32());
        Assert.Equal(32, model.GetProperty("inputSize").GetProperty("width").GetInt32());
        Assert.Equal("Float32", model.GetProperty("precision").GetString());
        Assert.Equal("ok", (await Json(await Client.GetAsync("healthz"), HttpStatusCode.OK)).GetProperty("status").GetString());
        Assert.Equal("ready", (await Json(await Client.GetAsync("readyz"), HttpStatusCode.OK)).GetProperty("status").GetString());

        var openApi = await Json(await Client.GetAsync("openapi/v1.json"), HttpStatusCode.OK);
        Assert.StartsWith("3.", openApi.GetProperty("openapi").GetString());
        var paths = openApi.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();
        foreach (var p in new[] { "/v1/predict", "/v1/segment", "/v1/features", "/v1/model", "/healthz", "/readyz" }) Assert.Contains(p, paths);

        var page = await Client.GetAsync("");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("drop-zone", await page.Content.ReadAsStringAsync());
        foreach (var asset in new[] { "app.js", "app.css" })
            Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("assets/" + asset)).StatusCode);
    }

    /// <summary>2,000 requests from 16 clients at once: zero errors, and every answer is beit predict's.</summary>
    [Fact]
    public async Task TwoThousandRequestsFromSixteenClientsAllMatchBeitPredict()
    {
        var paths = ServeImages.Paths();
        var bodies = paths.Select(File.ReadAllBytes).ToArray();
        int errors = 0, mismatches = 0, done = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 16).Select(client => Task.Run(async () =>
        {
            using var http = new HttpClient { BaseAddress = fixture.Server.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
            for (int i = client; i < 2000; i += 16)
            {
                int image = i % paths.Length;
                var content = new ByteArrayContent(bodies[image]);
                content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                try
                {
                    using var response = await http.PostAsync("v1/predict", content);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref errors);
                        continue;
                    }
                    using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                    if (!ServeImages.Predictions(doc.RootElement).SequenceEqual(fixture.Expected[paths[image]])) Interlocked.Increment(ref mismatches);
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }
                Interlocked.Increment(ref done);
            }
        })));
        output.WriteLine($"2000 requests, 16 clients: {clock.Elapsed.TotalSeconds:F1} s, {2000 / clock.Elapsed.TotalSeconds:F0} req/s; errors {errors}, mismatches {mismatches}");
        Assert.Equal(0, errors);
        Assert.Equal(0, mismatches);
        Assert.Equal(2000, done);
        Assert.DoesNotContain("fail:", fixture.Server.Stderr);
    }
}

/// <summary>Serving the other tasks and forms: segmentation and features zips, a checkpoint folder, micro-batching, shutdown.</summary>
[Trait("Category", "Slow")]
public sealed class ServeTasksTests(ITestOutputHelper output)
{
    private static ByteArrayContent Image(string path)
    {
        var content = new ByteArrayContent(File.ReadAllBytes(path));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return content;
    }

    /// <summary>The saved model loaded in this process, fed the image path: what the served model must reproduce.</summary>
    private static List<T> Reference<T>(string zip, string[] paths) where T : class, new()
    {
        var ml = new MLContext();
        var model = BeitModelZip.Load(ml, zip, out _);
        try
        {
            var data = ml.Data.LoadFromEnumerable(paths.Select(p => new PathRow { ImagePath = p }));
            return ml.Data.CreateEnumerable<T>(model.Transform(data), reuseRowObject: false).ToList();
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class SegmentationRow
    {
        public int[] PredictedLabel { get; set; } = [];
        public int[] PredictedLabelSize { get; set; } = [];
    }

    private sealed class FeaturesRow
    {
        public float[] Features { get; set; } = [];
    }

    [Fact]
    public async Task SegmentServesFractionsTheLabelMapPngAndTheOverlay()
    {
        using var dir = new TempDir();
        string zip = dir.Combine("seg.zip");
        ServeImages.Run("package", Fixtures.Tiny("seg_uper"), "--task", "semantic-segmentation", "--out", zip);
        string[] paths = [Fixtures.Preproc("seg_a.png"), Fixtures.Preproc("seg_b.png"), Fixtures.Preproc("chelsea.png")];
        var expected = Reference<SegmentationRow>(zip, paths);
        using var server = ServeProcess.Start(zip);
        var model = JsonDocument.Parse(await server.Client.GetStringAsync("v1/model")).RootElement;
        Assert.Equal("semantic-segmentation", model.GetProperty("task").GetString());
        var labels = model.GetProperty("labels").EnumerateArray().Select(l => l.GetString()!).ToArray();
        for (int i = 0; i < paths.Length; i++)
        {
            var map = expected[i].PredictedLabel;
            int height = expected[i].PredictedLabelSize[0], width = expected[i].PredictedLabelSize[1];

            var json = JsonDocument.Parse(await (await server.Client.PostAsync("v1/segment", Image(paths[i]))).Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(height, json.GetProperty("size").GetProperty("height").GetInt32());
            Assert.Equal(width, json.GetProperty("size").GetProperty("width").GetInt32());
            var classes = json.GetProperty("classes").EnumerateArray().ToList();
            Assert.Equal(1.0, classes.Sum(c => c.GetProperty("fraction").GetDouble()), 1e-9);
            foreach (var c in classes)
            {
                int id = c.GetProperty("classId").GetInt32();
                Assert.Equal(labels[id], c.GetProperty("label").GetString());
                Assert.Equal(map.Count(v => v == id), c.GetProperty("pixels").GetInt64());
                Assert.Equal((double)map.Count(v => v == id) / map.Length, c.GetProperty("fraction").GetDouble(), 1e-12);
            }
            Assert.Equal(map.Distinct().Count(), classes.Count);

            var png = await server.Client.PostAsync("v1/segment?format=png", Image(paths[i]));
            Assert.Equal("image/png", png.Content.Headers.ContentType?.MediaType);
            var decoded = ImageDecoder.DecodeLabelMap(await png.Content.ReadAsByteArrayAsync());
            Assert.Equal((width, height), (decoded.Width, decoded.Height));
            Assert.Equal(map, decoded.Labels.Select(b => (int)b));

            var overlay = await server.Client.PostAsync("v1/segment?format=overlay", Image(paths[i]));
            Assert.Equal("image/png", overlay.Content.Headers.ContentType?.MediaType);
            var picture = ImageDecoder.Decode(await overlay.Content.ReadAsByteArrayAsync());
            Assert.Equal((width, height), (picture.Width, picture.Height));
            var original = ImageDecoder.Decode(paths[i]);
            Assert.Equal(BeitSegmentationRendering.OverlayPng(map, new PixelSize(height, width), original), await overlay.Content.ReadAsByteArrayAsync());
        }
        var wrong = await server.Client.PostAsync("v1/predict", Image(paths[0]));
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        output.WriteLine(await wrong.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task FeaturesAreTheSavedPipelinesFeaturesExactly()
    {
        using var dir = new TempDir();
        string zip = dir.Combine("features.zip");
        ServeImages.Run("package", Fixtures.Tiny("cls_relpos"), "--task", "features", "--out", zip);
        var paths = ServeImages.Paths();
        var expected = Reference<FeaturesRow>(zip, paths);
        using var server = ServeProcess.Start(zip);
        var model = JsonDocument.Parse(await server.Client.GetStringAsync("v1/model")).RootElement;
        Assert.Equal("features", model.GetProperty("task").GetString());
        Assert.Equal(32, model.GetProperty("featureSize").GetInt32());
        for (int i = 0; i < paths.Length; i++)
        {
            var json = JsonDocument.Parse(await (await server.Client.PostAsync("v1/features", Image(paths[i]))).Content.ReadAsStringAsync()).RootElement;
            var features = json.GetProperty("features").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(expected[i].Features, features); // the same graph on the same pixels: bit-identical
        }
    }

    [Fact]
    public async Task ACheckpointFolderAndMicroBatchingAnswerAsBeitPredict()
    {
        string folder = Fixtures.Tiny("cls_relpos");
        var paths = ServeImages.Paths();
        var expected = ServeImages.PredictJson(folder, 5, paths);
        foreach (var options in new[] { Array.Empty<string>(), ["--max-batch", "8"] })
        {
            using var server = ServeProcess.Start(folder, options);
            // Concurrent requests, so the batcher has company to gather.
            var answers = await Task.WhenAll(Enumerable.Range(0, 64).Select(async i =>
            {
                var response = await server.Client.PostAsync("v1/predict", Image(paths[i % paths.Length]));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                return (Path: paths[i % paths.Length], Predictions: ServeImages.Predictions(doc.RootElement));
            }));
            foreach (var (path, predictions) in answers) Assert.Equal(expected[path], predictions);
            // A bad image inside a batch fails alone.
            var bad = new ByteArrayContent(Encoding.UTF8.GetBytes("not an image"));
            bad.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            var mixed = await Task.WhenAll(server.Client.PostAsync("v1/predict", bad), server.Client.PostAsync("v1/predict", Image(paths[0])));
            Assert.Equal(HttpStatusCode.BadRequest, mixed[0].StatusCode);
            Assert.Equal(HttpStatusCode.OK, mixed[1].StatusCode);
        }
    }

    /// <summary>SIGTERM while a request is still uploading: the request completes with its answer, then the process exits 0.</summary>
    [Fact]
    public async Task SigtermDrainsAnInFlightRequestThenExitsZero()
    {
        using var dir = new TempDir();
        string zip = dir.Combine("cls.zip");
        ServeImages.Run("package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip);
        string path = Fixtures.Preproc("chelsea.png");
        var expected = ServeImages.PredictJson(zip, 5, [path])[path];
        using var server = ServeProcess.Start(zip);
        var body = File.ReadAllBytes(path);

        // The body's second half waits for the gate, so the request is in flight when SIGTERM arrives.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var content = new StreamContent(new GatedStream(body, body.Length / 2, gate.Task));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        content.Headers.ContentLength = body.Length;
        var pending = server.Client.PostAsync("v1/predict", content);
        await Task.Delay(3000); // the server has the headers and half the body, and waits for the rest

        server.Terminate();
        // Shutdown has begun once a new connection is refused (polled: the machine may be loaded); this request is drained.
        bool refused = false;
        for (var clock = Stopwatch.StartNew(); !refused && clock.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(200))
        {
            try
            {
                using var late = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
                (await late.GetAsync("healthz")).Dispose();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                refused = true;
            }
        }
        Assert.True(refused, "the server still accepted connections 30 s after SIGTERM");
        Assert.False(pending.IsCompleted);
        gate.SetResult();
        var response = await pending;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(expected, ServeImages.Predictions(doc.RootElement));

        Assert.Equal(0, server.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Contains("stopped", server.Stderr);
        output.WriteLine(server.Stderr);
    }

    /// <summary>A body that stops after <c>pause</c> bytes until <c>gate</c> completes.</summary>
    private sealed class GatedStream(byte[] data, int pause, Task gate) : Stream
    {
        private int _position;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position == pause) await gate.WaitAsync(cancellationToken);
            int end = _position < pause ? pause : data.Length;
            int n = Math.Min(buffer.Length, end - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public void BadOptionsAndModelsFailAtStartWithOneLine()
    {
        var run = DotnetProcess.Run(ServeProcess.Beit, ["serve", Fixtures.Tiny("cls_relpos"), "--port", "70000"]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--port", run.Stderr);
        run = DotnetProcess.Run(ServeProcess.Beit, ["serve", Fixtures.Tiny("cls_relpos"), "--max-batch", "0"]);
        Assert.Equal(2, run.ExitCode);
        using var dir = new TempDir();
        string notZip = dir.Combine("model.zip");
        File.WriteAllText(notZip, "not a zip");
        run = DotnetProcess.Run(ServeProcess.Beit, ["serve", notZip, "--port", "0"]);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("model.zip", run.Stderr);
        run = DotnetProcess.Run(ServeProcess.Beit, ["serve", dir.Combine("absent.zip"), "--port", "0"]);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("does not exist", run.Stderr);
    }
}
