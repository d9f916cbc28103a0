using Beit.Cli.Commands;
using Microsoft.ML.Beit.Hub;
using Spectre.Console;

namespace Beit.Cli;

/// <summary>Checkpoint arguments that name a Hugging Face Hub model: downloaded with a progress bar on stderr.</summary>
internal static class HubModels
{
    /// <summary>
    /// The local path for a command's checkpoint argument: the argument itself when it exists or is no model id
    /// (the command's own not-found message then applies), else the cache folder of the Hub model, fetched with
    /// <c>HF_ENDPOINT</c>, <c>HF_HUB_CACHE</c>, <c>HF_TOKEN</c> and <c>HF_HUB_OFFLINE</c> honoured.
    /// </summary>
    public static string Local(string pathOrId, BeitHubFiles files = BeitHubFiles.All, CancellationToken ct = default)
    {
        if (File.Exists(pathOrId) || Directory.Exists(pathOrId) || !BeitHub.IsModelId(pathOrId)) return pathOrId;
        var options = new BeitHubOptions { Files = files };
        // stdout carries the command's result (and --json); the bar goes to stderr.
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        string folder = "";
        var tasks = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                     new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var progress = new CallbackProgress<BeitDownloadProgress>(p =>
                {
                    lock (tasks)
                    {
                        if (!tasks.TryGetValue(p.FileName, out var task))
                            tasks[p.FileName] = task = ctx.AddTask(Markup.Escape(p.FileName), maxValue: Math.Max(1, p.TotalBytes));
                        task.Value = p.BytesDownloaded;
                    }
                });
                folder = BeitHub.Resolve(pathOrId, options, progress, ct);
            });
        // One plain line (no markup, no wrapping) for logs, where the live bar is not drawn.
        long bytes = tasks.Values.Sum(t => (long)t.Value);
        Console.Error.WriteLine(tasks.Count == 0
            ? $"{pathOrId}: {folder} (cached)"
            : $"{pathOrId}: downloaded {tasks.Count} file(s), {bytes / 1e6:F1} MB in {clock.Elapsed.TotalSeconds:F1} s, to {folder}");
        return folder;
    }
}
