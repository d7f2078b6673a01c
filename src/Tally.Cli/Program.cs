using System.CommandLine;

namespace Tally.Cli;

internal static class Program
{
    /// <summary>Exit codes: 0 success, 1 usage, 2 a problem from the server, 3 unreachable.</summary>
    public static Task<int> Main(string[] args)
    {
        var parsed = TallyCommand.Create().Parse(args);
        // A mistake's message and the help shown with it go to standard error: standard output is for data only,
        // so `tally … | jq` never reads help text. `--help` asked for is data, on standard output.
        return parsed.Errors.Count > 0
            ? parsed.InvokeAsync(new InvocationConfiguration { Output = Console.Error })
            : parsed.InvokeAsync();
    }
}
