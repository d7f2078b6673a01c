using System.CommandLine;

namespace Tally.Cli.Commands;

/// <summary>Arguments and options several commands share.</summary>
internal static class Arguments
{
    public static Argument<string> Name() => new("name") { Description = "The counter's name." };

    public static Option<long?> IfMatch() => new("--if-match") { Description = "Apply only if the counter is at this version." };

    public static Option<long> By(string verb) => new("--by", "-b")
    {
        Description = $"How much to {verb} (1 to 9223372036854775807).",
        DefaultValueFactory = _ => 1,
    };

    public static Option<string?> Prefix() => new("--prefix", "-p") { Description = "Only counters whose names start with this." };
}
