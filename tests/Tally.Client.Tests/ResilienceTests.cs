using Microsoft.Extensions.DependencyInjection;
using Tally.Client.Tests.Infrastructure;

namespace Tally.Client.Tests;

/// <summary>Retries: the same Idempotency-Key and body on every attempt, so a retry after a lost answer never counts twice.</summary>
public sealed class ResilienceTests : IDisposable
{
    private readonly TallyServer _server = new();

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task AnIncrementWhoseAnswerWasLostIsRetriedAndCountedOnce()
    {
        var handler = new RecordingHandler { LoseAnswerOf = [1] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        var counter = await client.IncrementAsync("once", 5);

        Assert.Equal((5L, 1L), (counter.Value, counter.Version));
        Assert.Equal(5, (await _server.CreateTallyClient().GetAsync("once")).Value);
        var attempts = handler.Attempts.Where(attempt => attempt.Method == "POST").ToList();
        Assert.Equal(2, attempts.Count);
        Assert.NotNull(attempts[0].IdempotencyKey);
        Assert.Equal(attempts[0].IdempotencyKey, attempts[1].IdempotencyKey);
    }

    [Fact]
    public async Task ABatchWhoseAnswerWasLostIsResentWithTheSameKeyAndBody()
    {
        var handler = new RecordingHandler { LoseAnswerOf = [1] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        var results = await client.BatchAsync([BatchOperation.Increment("batched", 3), BatchOperation.Increment("batched", 4)]);

        Assert.Equal([3L, 7L], results.Select(result => result.Counter!.Value));
        Assert.Equal(7, (await _server.CreateTallyClient().GetAsync("batched")).Value);
        var attempts = handler.Attempts.ToList();
        Assert.Equal(2, attempts.Count);
        Assert.Equal((attempts[0].IdempotencyKey, attempts[0].Body), (attempts[1].IdempotencyKey, attempts[1].Body));
        Assert.Contains("\"batched\"", attempts[1].Body, StringComparison.Ordinal);
    }

    /// <summary>A service behind a proxy at a path: every request goes below that path, with or without a trailing slash.</summary>
    [Theory]
    [InlineData("tally")]
    [InlineData("tally/")]
    public async Task ABaseAddressWithAPathKeepsIt(string path)
    {
        var handler = new RecordingHandler();
        var client = _server.CreateTallyClient(
            options => options.BaseAddress = new Uri(_server.BaseAddress, path), http => http.AddHttpMessageHandler(() => handler));

        // Nothing serves /tally/ here: the service's 404 for the unknown route is the answer.
        await Assert.ThrowsAnyAsync<TallyException>(() => client.GetAsync("page:home"));
        await Assert.ThrowsAnyAsync<TallyException>(() => client.ListAsync());

        Assert.Equal(["/tally/counters/page%3Ahome", "/tally/counters"], handler.Attempts.Select(attempt => attempt.Path));
    }

    [Fact]
    public async Task EachCallHasAKeyOfItsOwn()
    {
        var handler = new RecordingHandler();
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        await client.IncrementAsync("twice");
        await client.IncrementAsync("twice");

        Assert.Equal(2, (await client.GetAsync("twice")).Value);
        var keys = handler.Attempts.Where(attempt => attempt.Method == "POST").Select(attempt => attempt.IdempotencyKey).ToList();
        Assert.Equal(2, keys.Distinct().Count());
    }

    [Fact]
    public async Task A503IsRetriedAfterItsRetryAfter()
    {
        var handler = new RecordingHandler { Answer503To = [1] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));
        var started = DateTime.UtcNow;

        var counter = await client.DecrementAsync("after-503", 2);

        Assert.Equal(-2, counter.Value);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(0.9), "The retry did not wait for Retry-After: 1.");
        var attempts = handler.Attempts.ToList();
        Assert.Equal(2, attempts.Count);
        Assert.Equal(attempts[0].IdempotencyKey, attempts[1].IdempotencyKey);
    }

    [Fact]
    public async Task AKeyStillInFlightIsRetriedUntilItsAnswerIsThere()
    {
        var handler = new RecordingHandler { AnswerInFlightTo = [1, 2] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        var counter = await client.IncrementAsync("in-flight", 4);

        Assert.Equal(4, counter.Value);
        var attempts = handler.Attempts.ToList();
        Assert.Equal(3, attempts.Count);
        Assert.Single(attempts.Select(attempt => attempt.IdempotencyKey).Distinct());
    }

    [Fact]
    public async Task AnotherConflictIsThrownNotRetried()
    {
        var handler = new RecordingHandler();
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));
        await client.SetAsync("conflict", new CounterSettings { Max = 0 });

        await Assert.ThrowsAsync<CounterOutOfRangeException>(() => client.IncrementAsync("conflict"));

        Assert.Equal(2, handler.Attempts.Count);
    }

    [Fact]
    public async Task APostWithoutAnIdempotencyKeyIsNotRetried()
    {
        var handler = new RecordingHandler { Answer503To = [1] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        var problem = await Assert.ThrowsAsync<StoreUnavailableException>(() => client.CreateKeyAsync(new ApiKeyRequest("ci", ["read"])));

        Assert.Equal((TimeSpan?)TimeSpan.FromSeconds(1), problem.RetryAfter);
        Assert.Single(handler.Attempts);
    }

    [Fact]
    public async Task ARevokeWhoseAnswerWasLostSucceedsThoughItsRetryFindsNoKey()
    {
        var created = await _server.CreateTallyClient().CreateKeyAsync(new ApiKeyRequest("lost-answer", ["read"]));
        var handler = new RecordingHandler { LoseAnswerOf = [1] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        await client.RevokeKeyAsync(created.Id);

        Assert.Equal(["DELETE", "DELETE"], handler.Attempts.Select(attempt => attempt.Method));
        Assert.DoesNotContain(await _server.CreateTallyClient().ListKeysAsync(), key => key.Id == created.Id);
    }

    [Fact]
    public async Task AnAlertDeleteWhoseAnswerWasLostSucceedsThoughItsRetryFindsNoAlert()
    {
        using var server = new TallyServer(settings: new Dictionary<string, string?> { ["Alerts:AllowedHosts"] = "127.0.0.1" });
        await server.CreateTallyClient().PutAlertAsync("lost", new AlertDefinition { Counter = "c", Above = 1, Webhook = "http://127.0.0.1:9/hook" });
        var handler = new RecordingHandler { LoseAnswerOf = [1] };
        var client = server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        await client.DeleteAlertAsync("lost");

        Assert.Equal(["DELETE", "DELETE"], handler.Attempts.Select(attempt => attempt.Method));
        await Assert.ThrowsAsync<AlertNotFoundException>(() => server.CreateTallyClient().GetAlertAsync("lost"));
    }

    [Fact]
    public async Task ADeleteOfNothingRetriedAfterAnAnswerStillThrows()
    {
        // A 503 is an answer: the first attempt did not delete anything, so the retry's 404 is the truth.
        var handler = new RecordingHandler { Answer503To = [1] };
        var client = _server.CreateTallyClient(builder: http => http.AddHttpMessageHandler(() => handler));

        var missing = await Assert.ThrowsAsync<ApiKeyNotFoundException>(() => client.RevokeKeyAsync("no-such-key"));

        Assert.Equal("key_not_found", missing.Code);
        Assert.Equal(2, handler.Attempts.Count);
        await Assert.ThrowsAsync<AlertNotFoundException>(() => _server.CreateTallyClient().DeleteAlertAsync("no-such-alert"));
    }

    [Fact]
    public async Task RetriesCanBeTurnedOff()
    {
        var handler = new RecordingHandler { LoseAnswerOf = [1] };
        var client = _server.CreateTallyClient(options => options.MaxRetryAttempts = 0, http => http.AddHttpMessageHandler(() => handler));

        await Assert.ThrowsAsync<HttpRequestException>(() => client.IncrementAsync("no-retry"));

        Assert.Single(handler.Attempts);
        Assert.Equal(1, (await _server.CreateTallyClient().GetAsync("no-retry")).Value);
    }
}
