using System.CommandLine;
using Spectre.Console;

namespace Tally.Cli.Commands;

internal static class ExportCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file")
        {
            Description = "Where to write the counters as JSON lines ('-': standard output).",
            DefaultValueFactory = _ => "-",
        };
        var command = new Command("export", "Every counter as JSON lines (admin), for tally import.") { Arguments = { file } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var path = parse.GetValue(file)!;
            if (path == "-")
            {
                await using var stdout = Console.OpenStandardOutput();
                await client.ExportAsync(stdout, cancellationToken: cancellationToken);
                return Globals.Success;
            }
            var bytes = await Files.WriteWholeAsync(path,
                stream => Transfer.RunAsync("export", progress => client.ExportAsync(stream, progress, cancellationToken)));
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new BackupOutput(Path.GetFullPath(path), bytes), CliJson.Default.BackupOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Wrote {bytes:N0} bytes to [bold]{Path.GetFullPath(path)}[/].");
            }
            return Globals.Success;
        }, transfer: true);
        return command;
    }
}
