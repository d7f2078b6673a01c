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
    public async Task RetriesCanBeTurnedOff()
    {
        var handler = new RecordingHandler { LoseAnswerOf = [1] };
        var client = _server.CreateTallyClient(options => options.MaxRetryAttempts = 0, http => http.AddHttpMessageHandler(() => handler));

        await Assert.ThrowsAsync<HttpRequestException>(() => client.IncrementAsync("no-retry"));

        Assert.Single(handler.Attempts);
        Assert.Equal(1, (await _server.CreateTallyClient().GetAsync("no-retry")).Value);
    }
}
