using StackExchange.Redis;
using Tally.Server.Auth;

namespace Tally.Server.Storage.Redis;

/// <summary>
/// Each instance beats every second in the sorted set <see cref="InstancesKey"/> (member: the instance's id, score:
/// the time of its last beat) and counts the instances that beat in the last five seconds (five beats, so a slow beat
/// or a pause does not make the count flap and hand out fresh buckets), so a rate limit can be split between them.
/// The times are Redis's own clock (<c>TIME</c>, read inside the beat's script), so instances on machines whose
/// clocks disagree still count each other. While Redis does not answer, the last count stays (requests fail with
/// 503 then anyway).
/// </summary>
internal sealed class RedisClusterMembership(IConnectionMultiplexer redis, ILogger<RedisClusterMembership> logger)
    : BackgroundService, IClusterSize
{
    public const string InstancesKey = "tally:instances";

    private static readonly TimeSpan Beat = TimeSpan.FromSeconds(1);

    // KEYS: the sorted set. ARGV: this instance's id. Milliseconds stay exact in Lua's doubles (about 2^41 now).
    // Entries a minute old go; the set itself goes a minute after the last instance stopped beating.
    private const string BeatScript = """
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        redis.call('ZADD', KEYS[1], now, ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
        redis.call('PEXPIRE', KEYS[1], 60000)
        return redis.call('ZCOUNT', KEYS[1], '(' .. (now - 5000), '+inf')
        """;

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
                await BeatAsync();
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task BeatAsync()
    {
        try
        {
            var instances = (long)await redis.GetDatabase().ScriptEvaluateAsync(BeatScript, [InstancesKey], [_id]);
            Volatile.Write(ref _instances, (int)Math.Max(1, instances));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogDebug(ex, "Heartbeat failed; keeping the last count of instances ({Instances})", Instances);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            // Leaving: the others take over this instance's share at their next beat.
            await redis.GetDatabase().SortedSetRemoveAsync(InstancesKey, _id).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or OperationCanceledException)
        {
            logger.LogDebug(ex, "Could not sign off from {Key}; the entry expires by itself", InstancesKey);
        }
    }
}
