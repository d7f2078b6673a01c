using System.CommandLine;

namespace Tally.Cli.Commands;

internal static class GetCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var command = new Command("get", "Show a counter.") { Arguments = { name } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            Output.Counter(await client.GetAsync(parse.GetValue(name)!, cancellationToken), parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }
}
