namespace Tally.Server.Auth;

/// <summary>
/// How many instances share the store right now. A rate limit holds for the cluster: each instance admits
/// its share of a key's budget (limits divided by <see cref="Instances"/>), so three instances behind a
/// load balancer admit about what one would.
/// </summary>
internal interface IClusterSize
{
    int Instances { get; }
}

/// <summary>An engine only one process uses (embedded SQLite, memory).</summary>
internal sealed class SingleInstance : IClusterSize
{
    public int Instances => 1;
}
