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
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(ExplainCommand.Create());
var parsed = root.Parse(args);
try
{
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return CliErrors.Report(parsed, e);
}
