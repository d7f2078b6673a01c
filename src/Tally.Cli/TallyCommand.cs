using System.CommandLine;
using Tally.Cli.Commands;

namespace Tally.Cli;

/// <summary>The root command: the global options and every subcommand.</summary>
internal static class TallyCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("tally: read and change the counters of a Tally service.")
        {
            Options = { Globals.Url, Globals.Key, Globals.Json },
        };
        foreach (var command in (Command[])[
            GetCommand.Create(), IncCommand.Create(), DecCommand.Create(), SetCommand.Create(), ResetCommand.Create(), RmCommand.Create(),
            LsCommand.Create(), TopCommand.Create(), HistoryCommand.Create(), WatchCommand.Create(), AlertsCommand.Create(),
            KeysCommand.Create(), BackupCommand.Create(), ExportCommand.Create(), ImportCommand.Create()])
        {
            root.Subcommands.Add(command);
        }
        return root;
    }
}
