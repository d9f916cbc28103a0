using System.CommandLine;
using Beit.Cli;
using Beit.Cli.Commands;

var root = new RootCommand("beit: BEiT vision transformers for ML.NET, with no Python anywhere.");
root.Options.Add(CliErrors.Verbose);
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(ExportOnnxCommand.Create());
root.Subcommands.Add(PreprocessCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(PretrainCommand.Create());
root.Subcommands.Add(PackageCommand.Create());
root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(ExportTritonCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(ExplainCommand.Create());
var parsed = root.Parse(args);
try
{
    var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
    // 'beit serve' leaves SIGTERM and Ctrl+C to ASP.NET Core's host, which drains in-flight requests
    // (System.CommandLine would otherwise end the process 2 s after the signal).
    if (parsed.CommandResult.Command.Name == "serve") invocation.ProcessTerminationTimeout = null;
    return parsed.Invoke(invocation);
}
catch (Exception e)
{
    return CliErrors.Report(parsed, e);
}
