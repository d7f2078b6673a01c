namespace Tally.Cli;

internal static class Program
{
    /// <summary>Exit codes: 0 success, 1 usage, 2 a problem from the server, 3 unreachable.</summary>
    public static Task<int> Main(string[] args) => TallyCommand.Create().Parse(args).InvokeAsync();
}
