using System.CommandLine;

namespace Tally.Cli.Commands;

internal static class ResetCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var ifMatch = Arguments.IfMatch();
        var command = new Command("reset", "Set a counter back to its initial value.") { Arguments = { name }, Options = { ifMatch } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            Output.Counter(await client.ResetAsync(parse.GetValue(name)!, parse.GetValue(ifMatch), cancellationToken), parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }
}
