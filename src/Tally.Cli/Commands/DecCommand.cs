using System.CommandLine;

namespace Tally.Cli.Commands;

internal static class DecCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var by = Arguments.By("subtract");
        var ifMatch = Arguments.IfMatch();
        var command = new Command("dec", "Decrement a counter (created at 0 if it does not exist).") { Arguments = { name }, Options = { by, ifMatch } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var counter = await client.DecrementAsync(parse.GetValue(name)!, parse.GetValue(by), parse.GetValue(ifMatch), cancellationToken);
            Output.Counter(counter, parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }
}
