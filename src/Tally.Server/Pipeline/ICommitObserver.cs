namespace Tally.Server.Pipeline;

/// <summary>
/// Told of every commit once it is acknowledged (durable with <c>Durability=sync</c>; applied and visible with
/// <c>async</c>), on the commit loop, before the next commit starts. Live events publish from here.
/// </summary>
/// <remarks>
/// Called for every commit, so it must be cheap and must never block: an observer with nothing to do returns at
/// once, and one with work hands it off. <paramref name="batch"/> is reused by the loop afterwards: read it during
/// the call, keep nothing of it but what <see cref="Counters.CounterChanges.Of"/> returns.
/// </remarks>
internal interface ICommitObserver
{
    void Committed(IReadOnlyList<PendingRequest> batch, IReadOnlyList<RequestOutcome> outcomes);
}
