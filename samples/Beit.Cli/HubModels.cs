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
        console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                     new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
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
        console.MarkupLineInterpolated($"[grey]{pathOrId} → {folder}[/]");
        return folder;
    }
}
