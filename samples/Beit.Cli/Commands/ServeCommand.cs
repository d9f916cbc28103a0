using System.CommandLine;
using Beit.Cli.Serving;

namespace Beit.Cli.Commands;

/// <summary>
/// <c>beit serve &lt;model&gt; [--host 127.0.0.1] [--port 5000] [--max-batch 1] [--max-body-bytes N] [--max-concurrency N]</c>:
/// serves a model over HTTP (see <see cref="BeitServer"/>) until SIGTERM or Ctrl+C, then drains in-flight requests.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model.zip made by 'beit package', a Hugging Face checkpoint folder, or a Hub model id (org/name[@revision])." };
        var host = new Option<string>("--host") { Description = "The address to listen on (default 127.0.0.1; 0.0.0.0 or :: for every interface, e.g. in a container).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "The TCP port (default 5000; 0 picks a free one, printed on stdout).", DefaultValueFactory = _ => 5000 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Score up to this many concurrent requests together, gathered over 2 ms (default 1: no batching).", DefaultValueFactory = _ => 1 };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "The largest request body accepted, in bytes (default 33554432 = 32 MiB); larger ones get 413.", DefaultValueFactory = _ => BeitServerOptions.DefaultMaxBodyBytes };
        var concurrency = new Option<int>("--max-concurrency") { Description = "How many requests run the model at once (default: the processor count); the rest wait.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var cmd = new Command("serve", "Serve a model over HTTP: /v1/predict, /v1/segment, /v1/features, /v1/attention, /v1/model, /healthz, /readyz, a web page at /.")
        {
            model, host, port, maxBatch, maxBody, concurrency,
        };
        cmd.SetAction((pr, ct) =>
        {
            int p = pr.GetValue(port), batch = pr.GetValue(maxBatch), slots = pr.GetValue(concurrency);
            long body = pr.GetValue(maxBody);
            if (p is < 0 or > 65535) return Usage("--port must be between 0 and 65535.");
            if (batch is < 1 or > 1024) return Usage("--max-batch must be between 1 and 1024.");
            if (body < 1) return Usage("--max-body-bytes must be at least 1.");
            if (slots < 1) return Usage("--max-concurrency must be at least 1.");
            var options = new BeitServerOptions
            {
                Model = HubModels.Local(pr.GetValue(model)!, ct: ct),
                Host = pr.GetValue(host)!,
                Port = p,
                MaxBatch = batch,
                MaxBodyBytes = body,
                MaxConcurrency = slots,
            };
            return BeitServer.RunAsync(options, Console.Out, ct);
        });
        return cmd;
    }

    private static Task<int> Usage(string message)
    {
        Console.Error.WriteLine($"beit serve: {message}");
        return Task.FromResult(2);
    }
}
