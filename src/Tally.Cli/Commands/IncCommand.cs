using System.CommandLine;

namespace Tally.Cli.Commands;

internal static class IncCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var by = Arguments.By("add");
        var ifMatch = Arguments.IfMatch();
        var command = new Command("inc", "Increment a counter (created at 0 if it does not exist).") { Arguments = { name }, Options = { by, ifMatch } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var counter = await client.IncrementAsync(parse.GetValue(name)!, parse.GetValue(by), parse.GetValue(ifMatch), cancellationToken);
            Output.Counter(counter, parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }
}
