using System.CommandLine;

namespace Tally.Cli;

internal static class Program
{
    /// <summary>Exit codes: 0 success, 1 usage, 2 a problem from the server, 3 unreachable.</summary>
    public static Task<int> Main(string[] args)
    {
        var parsed = TallyCommand.Create().Parse(args);
        // A mistake goes to standard error, in plain words, with where help is: standard output is for data only, so
        // `tally … | jq` never reads it. `--help` asked for is data, on standard output.
        return parsed.Errors.Count > 0 ? Task.FromResult(UsageErrors.Report(parsed)) : parsed.InvokeAsync();
    }
}
