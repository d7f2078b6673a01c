using System.CommandLine;
using System.Text.RegularExpressions;

namespace Tally.Cli;

/// <summary>
/// The parser's mistakes said in the CLI's own words, on standard error, one line each, then where help is: its
/// messages name .NET types ("as expected type 'System.Int64'") and the enums' C# names.
/// </summary>
internal static partial class UsageErrors
{
    public static int Report(ParseResult parsed)
    {
        foreach (var error in parsed.Errors)
        {
            Console.Error.WriteLine($"tally: {Plain(error.Message)}");
        }
        var path = new List<string>();
        for (var result = parsed.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            path.Insert(0, result.Command.Name);
        }
        Console.Error.WriteLine($"Run '{string.Join(' ', path)} --help' for how to use it.");
        return Globals.Usage;
    }

    /// <summary>A parser message with the type it wanted in plain words.</summary>
    public static string Plain(string message)
    {
        var cannot = CannotParse().Match(message);
        if (cannot.Success)
        {
            return $"'{cannot.Groups["value"].Value}' for {cannot.Groups["option"].Value} is not {Wanted(cannot.Groups["type"].Value)}.";
        }
        return OneOf().Replace(message, match => "must be one of: " + match.Groups["list"].Value.Replace("'", string.Empty, StringComparison.Ordinal)
            .Split((char[])[' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(name => name.ToLowerInvariant()).Aggregate((a, b) => $"{a}, {b}"));
    }

    private static string Wanted(string type) => type switch
    {
        _ when type.Contains("DateTimeOffset", StringComparison.Ordinal) => "an ISO-8601 time (2026-11-30T12:00:00Z)",
        _ when type.Contains("Int64", StringComparison.Ordinal) || type.Contains("Int32", StringComparison.Ordinal) => "a whole number",
        _ when type.Contains("HistoryInterval", StringComparison.Ordinal) => "one of minute, hour, day",
        _ => "a value it can take",
    };

    // What may follow ("Did you mean one of the following?" and the enum's C# names) is left out: Wanted names the values.
    [GeneratedRegex(@"^Cannot parse argument '(?<value>.*)' for (option|argument) '(?<option>[^']*)' as expected type '(?<type>[^']*)'", RegexOptions.Singleline)]
    private static partial Regex CannotParse();

    [GeneratedRegex(@"Must be one of:(?<list>(\s*'[^']*')+)")]
    private static partial Regex OneOf();
}
