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
            var partial = target.FullName + ".partial";
            long bytes;
            // Written beside the target and moved into place whole: a failed backup never leaves a truncated file under its name.
            await using (var stream = File.Create(partial))
            {
                try
                {
                    bytes = await Transfer.RunAsync("backup", progress => client.BackupAsync(stream, progress, cancellationToken));
                }
                catch
                {
                    await stream.DisposeAsync();
                    File.Delete(partial);
                    throw;
                }
            }
            File.Move(partial, target.FullName, overwrite: true);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new BackupOutput(target.FullName, bytes), CliJson.Default.BackupOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Wrote {bytes:N0} bytes to [bold]{target.FullName}[/].");
            }
            return Globals.Success;
        });
        return command;
    }
}
