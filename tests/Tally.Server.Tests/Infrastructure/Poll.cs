using System.Diagnostics;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>
/// Waiting for something a test cannot await (a load making progress, a change reaching another process): a short
/// delay between looks and a deadline that fails the test, saying what it waited for.
/// </summary>
internal static class Poll
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < (timeout ?? DefaultTimeout), $"timed out after {deadline.Elapsed.TotalSeconds:0.0} s waiting for {what}");
            await Task.Delay(10);
        }
    }

    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < (timeout ?? DefaultTimeout), $"timed out after {deadline.Elapsed.TotalSeconds:0.0} s waiting for {what}");
            await Task.Delay(20);
        }
    }
}
