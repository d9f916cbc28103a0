// Load benchmark of 'beit serve': requests per second, latency percentiles and the server's resident memory.
//
//   dotnet run -c Release --project benchmarks/Beit.Serve.Benchmarks [-- --requests 10000 --clients 16 --batch 8 --warm-up 2000 --image thin.png]
//
// Packages the tiny classifier fixture (test/fixtures/hf-beit/tiny/cls_relpos, 32×32) with 'beit package', then starts
// two servers at once as separate processes on free loopback ports: one plain (--max-batch 1) and one micro-batching
// (--max-batch B). It sends W warm-up requests (default 2,000) to each; then N requests from C concurrent clients to
// the plain server alone, reading its RSS (/proc/<pid>/status VmRSS) before, after every tenth and after: it must stay
// flat (the benchmark exits 1 when it grew by 10 % or more); then N more to each server in alternating slices under
// the same load, so micro-batching is compared with plain in the same run. Every answer
// must be 200 with the same top label as the first answer for that image. A tiny model measures the server itself
// (HTTP, decoding, preprocessing, the engine pool) rather than the transformer.
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Beit;

int requests = Arg("--requests", 10_000), clients = Arg("--clients", 16), batch = Arg("--batch", 8), slices = Arg("--slices", 10), warmUp = Arg("--warm-up", 2000);
string imageName = ArgText("--image", "thin.png");
string repository = FindRepository();
string beit = Path.Combine(repository, "samples", "Beit.Cli", "bin", "Release", "net10.0", "beit.dll");
if (!File.Exists(beit)) throw new FileNotFoundException($"{beit} is not built: dotnet build samples/Beit.Cli -c Release");
string image = Path.Combine(repository, "test", "fixtures", "hf-beit", "preproc", imageName);
var body = File.ReadAllBytes(image);

Console.WriteLine($"CPU: {CpuFeatures.Current.Describe()}; {Environment.ProcessorCount} cores visible; load average {LoadAverage()}");
Console.WriteLine($"{requests:N0} requests from {clients} clients to the plain server, in {slices} slices alternating with the --max-batch {batch} server; image {imageName} ({body.Length:N0} bytes)");

string work = Path.Combine(Path.GetTempPath(), "beit-serve-bench-" + Environment.ProcessId);
Directory.CreateDirectory(work);
var servers = new List<Process>();
try
{
    string zip = Path.Combine(work, "cls.zip");
    var package = Process.Start(new ProcessStartInfo("dotnet", [beit, "package", Path.Combine(repository, "test", "fixtures", "hf-beit", "tiny", "cls_relpos"), "--task", "image-classification", "--out", zip]) { RedirectStandardOutput = true })!;
    package.WaitForExit();
    if (package.ExitCode != 0) throw new InvalidOperationException("beit package failed");

    var (plain, plainUrl) = Start(beit, zip, 1);
    servers.Add(plain);
    var (batched, batchedUrl) = Start(beit, zip, batch);
    servers.Add(batched);
    using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients * 2 }) { Timeout = TimeSpan.FromMinutes(2) };

    string? reference = null;
    async Task<(List<double> Latencies, double Seconds)> Load(Uri url, int count)
    {
        var latencies = new double[count];
        int next = -1, errors = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                long start = Stopwatch.GetTimestamp();
                using var response = await http.PostAsync(new Uri(url, "v1/predict"), content);
                string text = await response.Content.ReadAsStringAsync();
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                string top = response.IsSuccessStatusCode ? JsonDocument.Parse(text).RootElement.GetProperty("predictions")[0].GetProperty("label").GetString()! : "";
                Interlocked.CompareExchange(ref reference, top, null);
                if (!response.IsSuccessStatusCode || top != reference) Interlocked.Increment(ref errors);
            }
        })));
        if (errors > 0) throw new InvalidOperationException($"{errors} of {count} requests failed or disagreed");
        return (latencies.ToList(), clock.Elapsed.TotalSeconds);
    }

    // Warm-up: JIT, tiered compilation, the engines, the thread pool and the GC heap reach their steady size.
    // Warm-up: JIT, tiered compilation, the engines, the thread pool and the GC heap reach their steady size.
    await Load(plainUrl, warmUp);
    await Load(batchedUrl, warmUp);

    // 1. Memory and latency: N requests to the plain server alone, RSS read before, after every tenth, and after.
    await Load(plainUrl, 200); // wake it after the other server's warm-up
    long rssBefore = Rss(plain.Id);
    Console.WriteLine($"plain server after {warmUp:N0} warm-up requests: RSS {rssBefore / 1e6:F1} MB; load average {LoadAverage()}");
    var plainLatencies = new List<double>();
    double plainSeconds = 0;
    var trend = new List<string>();
    for (int s = 0; s < 10; s++)
    {
        var a = await Load(plainUrl, requests / 10);
        plainLatencies.AddRange(a.Latencies);
        plainSeconds += a.Seconds;
        trend.Add($"{Rss(plain.Id) / 1e6:F1}");
    }
    long rssAfter = Rss(plain.Id);
    Console.WriteLine($"plain server RSS after each {requests / 10:N0} requests (MB): {string.Join(", ", trend)}");

    // 2. Micro-batching against plain, in alternating slices under the same load.
    var batchedLatencies = new List<double>();
    var ratios = new List<double>();
    double batchedSeconds = 0, plainSliceSeconds = 0;
    int perSlice = requests / slices;
    long rssBatchedBefore = Rss(batched.Id);
    for (int s = 0; s < slices; s++)
    {
        var a = await Load(plainUrl, perSlice);
        var b = await Load(batchedUrl, perSlice);
        batchedLatencies.AddRange(b.Latencies);
        plainSliceSeconds += a.Seconds;
        batchedSeconds += b.Seconds;
        ratios.Add(a.Seconds / b.Seconds);
        Console.WriteLine($"  slice {s + 1}/{slices}: plain {perSlice / a.Seconds:F0} req/s, batched {perSlice / b.Seconds:F0} req/s");
    }
    long rssBatchedAfter = Rss(batched.Id);

    Console.WriteLine();
    Console.WriteLine("| server | requests | req/s | p50 ms | p95 ms | p99 ms | RSS before → after |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    Row("--max-batch 1", plainLatencies, plainSeconds, rssBefore, rssAfter);
    Row($"--max-batch {batch} (alternating)", batchedLatencies, batchedSeconds, rssBatchedBefore, rssBatchedAfter);
    ratios.Sort();
    Console.WriteLine($"batched / plain throughput: median of the per-slice ratios {ratios[ratios.Count / 2]:F3} (min {ratios[0]:F3}, max {ratios[^1]:F3}); " +
                      $"plain in those slices {requests / plainSliceSeconds:F0} req/s");
    double growth = (rssAfter - rssBefore) / (double)rssBefore;
    Console.WriteLine($"plain server RSS change over {plainLatencies.Count:N0} requests: {(rssAfter - rssBefore) / 1e6:+0.0;-0.0} MB ({growth:P1}); load average at the end {LoadAverage()}");
    return growth < 0.10 ? 0 : 1;
}
finally
{
    foreach (var p in servers)
    {
        if (!p.HasExited) p.Kill(entireProcessTree: true);
        p.WaitForExit();
    }
    Directory.Delete(work, recursive: true);
}

static (Process, Uri) Start(string beit, string zip, int maxBatch)
{
    var psi = new ProcessStartInfo("dotnet", [beit, "serve", zip, "--port", "0", "--max-batch", maxBatch.ToString()]) { RedirectStandardOutput = true, RedirectStandardError = true };
    var process = Process.Start(psi)!;
    process.ErrorDataReceived += (_, _) => { };
    process.BeginErrorReadLine();
    string line = process.StandardOutput.ReadLine() ?? "";
    var m = Regex.Match(line, @"listening on (http://\S+)");
    if (!m.Success) throw new InvalidOperationException($"beit serve did not start: {line}");
    return (process, new Uri(m.Groups[1].Value.TrimEnd('/') + "/"));
}

static void Row(string name, List<double> latencies, double seconds, long before, long after)
{
    latencies.Sort();
    double P(double q) => latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
    Console.WriteLine($"| {name} | {latencies.Count:N0} | {latencies.Count / seconds:F0} | {P(0.50):F1} | {P(0.95):F1} | {P(0.99):F1} | {before / 1e6:F1} → {after / 1e6:F1} MB |");
}

static long Rss(int pid)
{
    foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    return 0;
}

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

static string FindRepository()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "Beit.MLNet.sln"))) return dir.FullName;
    throw new DirectoryNotFoundException("Beit.MLNet.sln not found above " + AppContext.BaseDirectory);
}

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
}

string ArgText(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
