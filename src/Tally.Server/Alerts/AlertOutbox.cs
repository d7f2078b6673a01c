namespace Tally.Server.Alerts;

/// <summary>
/// An event waiting in the outbox, as a sender took it: <see cref="Attempts"/> made so far, and the lease that makes
/// this sender the only one sending it (<see cref="Lease"/>: the engine's token, checked when the attempt is recorded).
/// </summary>
internal sealed record OutboxEvent(string Id, string AlertId, AlertEventType Type, string Payload, long CreatedAt, int Attempts, string Lease = "")
{
    public string TypeName => Type == AlertEventType.Firing ? "alert.firing" : "alert.resolved";
}

/// <summary>What became of one delivery attempt.</summary>
internal enum DeliveryOutcome
{
    /// <summary>The receiver answered 2xx: done.</summary>
    Delivered,
    /// <summary>Not delivered; tried again later.</summary>
    Failed,
    /// <summary>The receiver answered <c>410 Gone</c>: the alert's webhook is disabled, its undelivered events dropped.</summary>
    Disabled,
    /// <summary>The last attempt of the retry schedule failed: the event is dropped.</summary>
    GaveUp,
    /// <summary>Not sent: the alert was deleted or its webhook disabled meanwhile.</summary>
    Dropped,
}

/// <summary>One attempt (or a decision not to attempt), as <c>GET /alerts/{id}/deliveries</c> lists it.</summary>
/// <param name="Status">The receiver's HTTP status; null when there was no answer.</param>
/// <param name="Error">Why it failed (timeout, connection refused, a refused address, a non-2xx status…); null on success.</param>
internal sealed record DeliveryAttempt(
    string AlertId, string EventId, AlertEventType Type, int Attempt, long At, int? Status, string? Error, DeliveryOutcome Outcome)
{
    public string TypeName => Type == AlertEventType.Firing ? "alert.firing" : "alert.resolved";

    public static string OutcomeName(DeliveryOutcome outcome) => outcome switch
    {
        DeliveryOutcome.Delivered => "delivered",
        DeliveryOutcome.Failed => "failed",
        DeliveryOutcome.Disabled => "disabled",
        DeliveryOutcome.GaveUp => "gave_up",
        _ => "dropped",
    };

    public static DeliveryOutcome ParseOutcome(string name) => name switch
    {
        "delivered" => DeliveryOutcome.Delivered,
        "failed" => DeliveryOutcome.Failed,
        "disabled" => DeliveryOutcome.Disabled,
        "gave_up" => DeliveryOutcome.GaveUp,
        _ => DeliveryOutcome.Dropped,
    };
}

/// <summary>
/// The engine's outbox, as the sender (<see cref="AlertSender"/>) and <c>GET /alerts/{id}/deliveries</c> use it. The
/// events get there in the same transaction as the change that caused them (each engine's commit); this is the rest of
/// their life: leased by one sender, then removed (delivered, given up, dropped) or scheduled again.
/// </summary>
internal interface IAlertOutbox
{
    /// <summary>
    /// Takes up to <paramref name="max"/> events due at <paramref name="now"/> for this sender alone, until it records
    /// their attempts or its lease of <paramref name="lease"/> runs out (a crashed sender's events are then taken over).
    /// </summary>
    Task<IReadOnlyList<OutboxEvent>> LeaseAsync(int max, long now, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>
    /// Records an attempt: with <paramref name="retryAt"/> the event stays, due then, its attempts counted (null: it
    /// leaves the outbox). <paramref name="attempt"/> null: not an attempt, only postponed (an alert not known here yet).
    /// </summary>
    Task FinishAsync(OutboxEvent leased, DeliveryAttempt? attempt, long? retryAt, CancellationToken cancellationToken);

    /// <summary>The alert's latest attempts, newest first.</summary>
    Task<IReadOnlyList<DeliveryAttempt>> ListDeliveriesAsync(string alertId, int limit, CancellationToken cancellationToken);

    /// <summary>Events in the outbox (due or scheduled), for the backlog gauge.</summary>
    Task<long> CountAsync(CancellationToken cancellationToken);

    /// <summary>Forgets delivery attempts older than <paramref name="before"/> (a bounded step).</summary>
    Task PruneDeliveriesAsync(long before, CancellationToken cancellationToken);
}
