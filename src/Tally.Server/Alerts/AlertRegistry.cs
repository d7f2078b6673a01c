namespace Tally.Server.Alerts;

/// <summary>
/// The alert definitions: stored by the engine, kept in memory (published through <see cref="AlertCatalog"/>) so the
/// commit path never reads them. Changes are written to the store first, then to the cache. A shared store (PostgreSQL,
/// Redis) also reloads them when another instance changes them, as the API keys do.
/// </summary>
internal abstract class AlertRegistry(AlertCatalog catalog) : IAsyncDisposable
{
    private readonly SemaphoreSlim _writes = new(1, 1);
    private int _disposed;

    public AlertSet Current => catalog.Current;

    public async Task OpenAsync(CancellationToken cancellationToken) =>
        catalog.Publish(new AlertSet(await LoadAsync(cancellationToken)));

    /// <summary>Stores the alert (a new one, or a new version of one); it applies to commits from now on.</summary>
    public async Task PutAsync(AlertDefinition alert, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            await SaveAsync(alert, expected: null, cancellationToken);
            catalog.Publish(catalog.Current.With(alert));
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>Deletes the alert with its states, undelivered events and delivery attempts; false when there is none.</summary>
    public async Task<bool> RemoveAsync(string id, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            var removed = await DeleteAsync(id, cancellationToken);
            catalog.Publish(catalog.Current.Without(id));
            return removed;
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// A <c>410 Gone</c> from <paramref name="webhook"/>: disables the alert's webhook and drops its undelivered events,
    /// unless the alert has changed since (a new URL is not disabled by the old one's answer).
    /// </summary>
    public async Task<bool> DisableWebhookAsync(string id, string webhook, string reason, long now, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (catalog.Current.Find(id) is not { } current || current.Webhook != webhook || !current.WebhookEnabled)
            {
                return false;
            }
            var disabled = current with { DisabledAt = now, DisabledReason = reason };
            if (!await SaveAsync(disabled, expected: current, cancellationToken))
            {
                return false; // changed on another instance meanwhile: its version stands
            }
            catalog.Publish(catalog.Current.With(disabled));
            return true;
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>Once, however often called: the engine's store is registered as its registry and as its outbox.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await DisposeCoreAsync();
        _writes.Dispose();
    }

    protected virtual ValueTask DisposeCoreAsync() => ValueTask.CompletedTask;

    /// <summary>Makes the cache what a shared store holds now, unless <paramref name="stillCurrent"/> says a local change may be missing from it.</summary>
    protected async Task<bool> ReplaceAllAsync(IReadOnlyList<AlertDefinition> alerts, Func<bool> stillCurrent, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (!stillCurrent())
            {
                return false;
            }
            catalog.Publish(new AlertSet(alerts));
            return true;
        }
        finally
        {
            _writes.Release();
        }
    }

    protected abstract Task<IReadOnlyList<AlertDefinition>> LoadAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Inserts or replaces the alert's document. With <paramref name="expected"/>, only if the stored document is still
    /// that one (returns false otherwise); a webhook disabled by the same save drops the alert's undelivered events with it.
    /// </summary>
    protected abstract Task<bool> SaveAsync(AlertDefinition alert, AlertDefinition? expected, CancellationToken cancellationToken);

    /// <summary>Deletes the alert, its states, undelivered events and delivery attempts; false when it did not exist.</summary>
    protected abstract Task<bool> DeleteAsync(string id, CancellationToken cancellationToken);
}

/// <summary>An alert change could not be made durable; nothing changed.</summary>
internal sealed class AlertStoreException(string message, Exception inner) : Exception(message, inner);
