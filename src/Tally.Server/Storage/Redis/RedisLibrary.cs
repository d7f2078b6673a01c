using StackExchange.Redis;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// The <c>tally_v1</c> Redis Function library (tally.lua, embedded in the assembly). Functions live in Redis's
/// own data (RDB and AOF) and so survive restarts and failovers, unlike <c>EVALSHA</c>'s script cache. Loaded with
/// <c>FUNCTION LOAD REPLACE</c> at start unless Redis holds the same or a newer revision; the protocol's version is in
/// the library's name, so a new protocol ships as <c>tally_v2</c> beside it during a rolling upgrade.
/// </summary>
internal static class RedisLibrary
{
    public const string Commit = "tally_v1_commit";
    public const string List = "tally_v1_list";
    public const string Top = "tally_v1_top";
    public const string Prune = "tally_v1_prune";
    public const string AlertDue = "tally_v1_alert_due";
    public const string AlertFinish = "tally_v1_alert_finish";
    public const string HistoryFoldPart = "tally_v1_history_fold";
    public const string HistoryFoldBegin = "tally_v1_history_fold_begin";
    public const string HistoryFoldApply = "tally_v1_history_fold_apply";
    public const string HistoryFoldEnd = "tally_v1_history_fold_end";

    private static readonly Lazy<string> Code = new(() =>
    {
        using var stream = typeof(RedisLibrary).Assembly.GetManifestResourceStream("Tally.Server.Storage.Redis.tally.lua")
            ?? throw new InvalidOperationException("tally.lua is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>This build's revision of the library (<c>local REVISION</c> in tally.lua).</summary>
    public static int Revision { get; } = int.Parse(
        System.Text.RegularExpressions.Regex.Match(Code.Value, @"^local REVISION = (\d+)$", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value,
        System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Loads the library unless Redis holds this revision or a newer one already: during a rolling upgrade the newest
    /// code stays, whichever instance starts last (revisions within tally_v1 only add; they never change the protocol).
    /// </summary>
    public static async Task LoadAsync(IDatabase database)
    {
        try
        {
            if ((int)await database.ExecuteAsync("FCALL_RO", "tally_v1_revision", 0) >= Revision)
            {
                return;
            }
        }
        catch (RedisServerException ex) when (IsMissing(ex))
        {
            // not loaded yet (or flushed)
        }
        await database.ExecuteAsync("FUNCTION", "LOAD", "REPLACE", Code.Value);
    }

    /// <summary>Whether Redis said it has no such function (its functions were flushed): load the library again and retry.</summary>
    public static bool IsMissing(RedisServerException ex) => ex.Message.Contains("Function not found", StringComparison.OrdinalIgnoreCase);
}
