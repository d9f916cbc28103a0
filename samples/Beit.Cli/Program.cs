using System.CommandLine;
using Beit.Cli.Commands;

var root = new RootCommand("beit: BEiT vision transformers for ML.NET, with no Python anywhere.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(ExportOnnxCommand.Create());
root.Subcommands.Add(PreprocessCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(PretrainCommand.Create());
root.Subcommands.Add(PackageCommand.Create());
root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
return root.Parse(args).Invoke();
