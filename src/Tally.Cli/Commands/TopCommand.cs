using System.CommandLine;

namespace Tally.Cli.Commands;

internal static class TopCommand
{
    public static Command Create()
    {
        var prefix = Arguments.Prefix();
        var limit = new Option<int>("--limit", "-n") { Description = "How many, 1 to 1000.", DefaultValueFactory = _ => 10 };
        var command = new Command("top", "The counters with the highest values, highest first.") { Options = { prefix, limit } };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            var top = await client.TopAsync(parse.GetValue(prefix), parse.GetValue(limit), cancellationToken);
            if (parse.GetValue(Globals.Json))
            {
                Output.Json(new ItemsOutput<Tally.Client.Counter>(top), CliJson.Default.ItemsOutputCounter);
                return Globals.Success;
            }
            Globals.Out.Write(Output.CounterTable(top));
            return Globals.Success;
        });
        return command;
    }
}
