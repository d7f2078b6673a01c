using System.CommandLine;
using Spectre.Console;

namespace Tally.Cli.Commands;

internal static class ImportCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "An export's JSON lines ('-': standard input)." };
        var command = new Command("import", "Write the counters of an export, in one atomic commit (admin).") { Arguments = { file } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var path = parse.GetValue(file)!;
            if (path != "-" && !File.Exists(path))
            {
                throw new UsageException($"no such file: {path}");
            }
            await using var stream = path == "-" ? Console.OpenStandardInput() : File.OpenRead(path);
            var imported = await Transfer.RunAsync("import", progress => client.ImportAsync(stream, progress, cancellationToken));
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new ImportOutput(imported), CliJson.Default.ImportOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Imported {imported:N0} counters.");
            }
            return Globals.Success;
        }, transfer: true);
        return command;
    }
}
