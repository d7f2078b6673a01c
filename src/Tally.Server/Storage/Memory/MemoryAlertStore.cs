using Tally.Server.Alerts;

namespace Tally.Server.Storage.Memory;

/// <summary>
/// With <c>Store=memory</c>: alert definitions, the outbox and delivery attempts live as long as the process. The
/// counter store appends a commit's events here (<see cref="Append"/>) as it "persists" the commit; one sender, so a
/// lease is simply the event being in flight.
/// </summary>
internal sealed class MemoryAlertStore(AlertCatalog catalog) : AlertRegistry(catalog), IAlertOutbox
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, AlertDefinition> _alerts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Pending> _outbox = new(StringComparer.Ordinal);
    private readonly List<DeliveryAttempt> _deliveries = [];

    /// <summary>A commit's events join the outbox, due at once.</summary>
    public void Append(IEnumerable<AlertEvent> events)
    {
        lock (_lock)
        {
            foreach (var e in events)
            {
                _outbox[e.Id] = new Pending(new OutboxEvent(e.Id, e.AlertId, e.Type, e.Payload, e.CreatedAt, 0), e.CreatedAt, false);
            }
        }
    }

    public Task<IReadOnlyList<OutboxEvent>> LeaseAsync(int max, long now, TimeSpan lease, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var due = _outbox.Values.Where(p => !p.InFlight && p.DueAt <= now).OrderBy(p => p.DueAt).Take(max).ToList();
            foreach (var pending in due)
            {
                _outbox[pending.Event.Id] = pending with { InFlight = true };
            }
            return Task.FromResult<IReadOnlyList<OutboxEvent>>([.. due.Select(p => p.Event)]);
        }
    }

    public Task FinishAsync(OutboxEvent leased, DeliveryAttempt? attempt, long? retryAt, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (attempt is not null)
            {
                _deliveries.Add(attempt);
            }
            if (!_outbox.ContainsKey(leased.Id))
            {
                return Task.CompletedTask; // the alert was deleted or disabled meanwhile
            }
            if (retryAt is { } due)
            {
                _outbox[leased.Id] = new Pending(leased with { Attempts = attempt?.Attempt ?? leased.Attempts }, due, false);
            }
            else
            {
                _outbox.Remove(leased.Id);
            }
        }
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<DeliveryAttempt>> ListDeliveriesAsync(string alertId, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<DeliveryAttempt>>([.. Enumerable.Reverse(_deliveries).Where(d => d.AlertId == alertId).Take(limit)]);
        }
    }

    public Task<long> CountAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult((long)_outbox.Count);
        }
    }

    public Task PruneDeliveriesAsync(long before, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _deliveries.RemoveAll(d => d.At < before);
        }
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<AlertDefinition>> LoadAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<AlertDefinition>>([.. _alerts.Values]);
        }
    }

    protected override Task<bool> SaveAsync(AlertDefinition alert, AlertDefinition? expected, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (expected is not null && _alerts.GetValueOrDefault(alert.Id) != expected)
            {
                return Task.FromResult(false);
            }
            _alerts[alert.Id] = alert;
            if (!alert.WebhookEnabled)
            {
                DropEventsOf(alert.Id);
            }
            return Task.FromResult(true);
        }
    }

    protected override Task<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            DropEventsOf(id);
            _deliveries.RemoveAll(d => d.AlertId == id);
            return Task.FromResult(_alerts.Remove(id));
        }
    }

    private void DropEventsOf(string alertId)
    {
        foreach (var id in _outbox.Where(entry => entry.Value.Event.AlertId == alertId).Select(entry => entry.Key).ToList())
        {
            _outbox.Remove(id);
        }
    }

    private sealed record Pending(OutboxEvent Event, long DueAt, bool InFlight);
}
