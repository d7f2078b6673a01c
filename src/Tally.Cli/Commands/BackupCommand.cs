using System.CommandLine;
using Spectre.Console;

namespace Tally.Cli.Commands;

internal static class BackupCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "Where to write the copy of the SQLite data file." };
        var command = new Command("backup", "Download a consistent copy of the data file (admin; the embedded SQLite store).") { Arguments = { file } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var target = parse.GetValue(file)!;
            var bytes = await Files.WriteWholeAsync(target.FullName,
                stream => Transfer.RunAsync("backup", progress => client.BackupAsync(stream, progress, cancellationToken)));
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new BackupOutput(target.FullName, bytes), CliJson.Default.BackupOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Wrote {bytes:N0} bytes to [bold]{target.FullName}[/].");
            }
            return Globals.Success;
        }, transfer: true);
        return command;
    }
}
