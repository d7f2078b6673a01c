using Npgsql;
using Tally.Server.Auth;

namespace Tally.Server.Storage.Postgres;

/// <summary>
/// Each instance writes a heartbeat to the <c>instances</c> table every second and counts the instances
/// seen in the last five seconds (five beats, so a slow beat or a pause does not make the count flap and hand
/// out fresh buckets), so a rate limit can be split between them. While PostgreSQL does not
/// answer, the last count stays (requests fail with 503 then anyway).
/// </summary>
internal sealed class PostgresClusterMembership(NpgsqlDataSource dataSource, ILogger<PostgresClusterMembership> logger)
    : BackgroundService, IClusterSize
{
    private static readonly TimeSpan Beat = TimeSpan.FromSeconds(1);

    private readonly string _id = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
    private int _instances = 1;

    public int Instances => Volatile.Read(ref _instances);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Beat);
        try
        {
            do
            {
                await BeatAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task BeatAsync(CancellationToken stoppingToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("""
                WITH beat AS (
                    INSERT INTO instances (id, seen_at) VALUES ($1, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()
                ), gone AS (
                    DELETE FROM instances WHERE seen_at < now() - interval '1 minute'
                )
                SELECT count(*) FROM instances WHERE seen_at > now() - interval '5 seconds' AND id <> $1
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _id });
            var others = (long)(await command.ExecuteScalarAsync(stoppingToken))!;
            Volatile.Write(ref _instances, (int)Math.Max(1, others + 1));
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            logger.LogDebug(ex, "Heartbeat failed; keeping the last count of instances ({Instances})", Instances);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            // Leaving: the others take over this instance's share at once.
            await using var command = dataSource.CreateCommand("DELETE FROM instances WHERE id = $1");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _id });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
        {
            logger.LogDebug(ex, "Could not sign off from the instances table; the entry expires by itself");
        }
    }
}
