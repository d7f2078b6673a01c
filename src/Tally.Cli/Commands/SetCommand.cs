using System.CommandLine;
using Tally.Client;

namespace Tally.Cli.Commands;

internal static class SetCommand
{
    public static Command Create()
    {
        var name = Arguments.Name();
        var value = new Argument<long?>("value") { Description = "The new value (optional).", Arity = ArgumentArity.ZeroOrOne };
        var initial = new Option<long?>("--initial") { Description = "What reset returns to." };
        var min = new Option<long?>("--min") { Description = "The inclusive lower bound." };
        var max = new Option<long?>("--max") { Description = "The inclusive upper bound." };
        var noMin = new Option<bool>("--no-min") { Description = "Remove the lower bound." };
        var noMax = new Option<bool>("--no-max") { Description = "Remove the upper bound." };
        var ifMatch = Arguments.IfMatch();
        var command = new Command("set", "Create a counter, or change its value, initial value or bounds (fields not given are kept).")
        {
            Arguments = { name, value },
            Options = { initial, min, max, noMin, noMax, ifMatch },
        };
        command.SetClientAction(async (parse, client, cancellationToken) =>
        {
            if (parse.GetValue(min) is not null && parse.GetValue(noMin) || parse.GetValue(max) is not null && parse.GetValue(noMax))
            {
                throw new UsageException("give a bound or remove it, not both (--min with --no-min, --max with --no-max).");
            }
            var settings = Build(parse.GetValue(value), parse.GetValue(initial),
                (parse.GetValue(min) is not null || parse.GetValue(noMin), parse.GetValue(min)),
                (parse.GetValue(max) is not null || parse.GetValue(noMax), parse.GetValue(max)));
            var counter = await client.SetAsync(parse.GetValue(name)!, settings, parse.GetValue(ifMatch), cancellationToken);
            Output.Counter(counter, parse.GetValue(Globals.Json));
            return Globals.Success;
        });
        return command;
    }

    /// <summary>A bound that is given (a number, or null to remove it) is sent; one not given is kept by the service.</summary>
    private static CounterSettings Build(long? value, long? initial, (bool Given, long? Value) min, (bool Given, long? Value) max) => (min.Given, max.Given) switch
    {
        (true, true) => new() { Value = value, Initial = initial, Min = min.Value, Max = max.Value },
        (true, false) => new() { Value = value, Initial = initial, Min = min.Value },
        (false, true) => new() { Value = value, Initial = initial, Max = max.Value },
        _ => new() { Value = value, Initial = initial },
    };
}
