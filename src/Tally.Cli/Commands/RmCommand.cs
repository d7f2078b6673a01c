using System.CommandLine;
using Spectre.Console;

namespace Tally.Cli.Commands;

internal static class RmCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var ifMatch = Arguments.IfMatch();
        var command = new Command("rm", "Delete a counter and its history.") { Arguments = { name }, Options = { ifMatch } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var counter = parse.GetValue(name)!;
            await client.DeleteAsync(counter, parse.GetValue(ifMatch), cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new DeletedOutput(counter), CliJson.Default.DeletedOutput);
            }
            else
            {
                Globals.Out.MarkupLineInterpolated($"Deleted [bold]{counter}[/].");
            }
            return Globals.Success;
        });
        return command;
    }
}
