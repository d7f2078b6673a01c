using System.Text;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;
using Tally.Server.Storage;
using Tally.Server.Tests.Counters;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// The Redis engine's rules (tally.lua) against the C# batch applier, side by side: the same random commits, with
/// batches (atomic or not), idempotency keys reused with the same or another request, API keys at their counter
/// quota and a store at its maximum, go to the memory store and to Redis, and every outcome must be the same —
/// status, state, error code, words, the state a failure carries, replays. (A record's size in bytes is the engine's
/// own, so the idempotency byte quota is tested on its own, in RedisCounterStoreTests.)
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisApplierParityTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static readonly QuotaOptions Quotas = new() { MaxCounters = 3 };
    private static readonly Requester[] Requesters = [new("key_a", 2), new("key_b", 3), new("key_c", null), Requester.Unlimited];

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    public async Task EveryOutcomeIsTheOneTheApplierGives(int seed)
    {
        await using var stores = new RedisStores(await redis.ResetAsync());
        var clock = new ManualClock(1_700_000_000_000);
        await using var reference = await Tally.Server.Tests.Quotas.QuotaTesting.OpenAsync("memory", string.Empty, clock, Quotas);
        var store = stores.Create(clock, Quotas);
        await store.OpenAsync(CancellationToken.None);
        var random = new Random(seed);
        var model = new CounterModel();
        var generator = new CommandGenerator(seed);

        var seen = new HashSet<string>();
        for (var commit = 0; commit < 400; commit++)
        {
            // Now and then a jump past the retention: keys expire and are used again.
            clock.NowMs += random.Next(100) < 3 ? (long)TimeSpan.FromHours(25).TotalMilliseconds : 1 + random.Next(5);
            var requests = Enumerable.Range(0, random.Next(1, 6)).Select(_ => NextRequest(random, generator, model)).ToList();

            var expected = await reference.CommitAsync(Copy(requests), CancellationToken.None);
            var actual = await store.CommitAsync(Copy(requests), CancellationToken.None);

            for (var i = 0; i < requests.Count; i++)
            {
                seen.UnionWith(Features(expected[i]));
                Assert.True(Describe(expected[i]) == Describe(actual[i]),
                    $"seed {seed}, commit {commit}, request {i} ({requests[i].Describe}):\n  applier {Describe(expected[i])}\n  redis   {Describe(actual[i])}");
            }
            foreach (var name in new[] { "a", "b", "c:d", "e" })
            {
                Assert.Equal(Strip(await reference.GetAsync(name)), Strip(await store.GetAsync(name)));
            }
        }
        string[] paths = ["replay", "aborted", ErrorCodes.IdempotencyKeyReused, ErrorCodes.CounterQuotaExceeded,
            ErrorCodes.OutOfRange, ErrorCodes.VersionMismatch, ErrorCodes.CounterNotFound, ErrorCodes.InvalidName, ErrorCodes.InvalidValue];
        Assert.Empty(paths.Except(seen));
    }

    /// <summary>What an outcome exercised, so the test fails if the random requests stop reaching a path.</summary>
    private static IEnumerable<string> Features(RequestOutcome outcome)
    {
        if (outcome.Replayed)
        {
            yield return "replay";
        }
        if (outcome.Batch is { Aborted: true })
        {
            yield return "aborted";
        }
        foreach (var result in outcome.Batch?.Results ?? [outcome.Result])
        {
            if (result.Error is { } error)
            {
                yield return error.Code;
            }
        }
    }

    private static PendingRequest[] Copy(List<Draft> drafts) => [.. drafts.Select(draft => draft.ToRequest())];

    private static Draft NextRequest(Random random, CommandGenerator generator, CounterModel model)
    {
        var requester = Requesters[random.Next(Requesters.Length)];
        // A small pool of keys per caller, so keys are replayed, and now and then reused for another request.
        var key = random.Next(100) < 40 ? $"k{random.Next(6)}" : null;
        if (random.Next(100) < 30)
        {
            var operations = Enumerable.Range(0, random.Next(1, 6)).Select(_ => Next(random, generator, model)).ToList();
            return new Draft(null, new BatchCommand(operations, Atomic: random.Next(2) == 0), requester, key, random.Next(100) < 10);
        }
        return new Draft(Next(random, generator, model), null, requester, key, random.Next(100) < 10);
    }

    private static CounterCommand Next(Random random, CommandGenerator generator, CounterModel model)
    {
        var command = random.Next(100) < 8 ? CounterCommand.Increment("e", 1) : generator.Next(model);
        model.Apply(command, 0); // only to bias the next commands toward the edges of what exists
        return command;
    }

    private static string Describe(RequestOutcome outcome)
    {
        var text = new StringBuilder(outcome.Replayed ? "replay " : string.Empty);
        if (outcome.Batch is { } batch)
        {
            text.Append($"batch aborted at {batch.FailedIndex}: ");
            var upTo = batch.Aborted ? batch.FailedIndex + 1 : batch.Results.Length;
            text.AppendJoin(" | ", batch.Results.Take(upTo).Select(Describe));
        }
        else
        {
            text.Append(Describe(outcome.Result));
        }
        return text.ToString();
    }

    // A deletion answers 204 without a body: a replay need not carry the state before it.
    private static string Describe(CommandResult result) => result.Status == CommandStatus.Deleted ? "Deleted" :
        $"{result.Status} {CounterModel.Describe(Strip(result.Counter))} changed={result.Changed} " +
        $"{result.Error?.Code} '{result.Error?.Detail}' current={CounterModel.Describe(Strip(result.Error?.Current))} retry={result.Error?.RetryAfterSeconds}";

    /// <summary>Outcomes do not carry the creator (answers never show it); stored counters are compared without it too.</summary>
    private static Counter? Strip(Counter? counter) => counter is null ? null : counter with { CreatedBy = null };

    private sealed record Draft(CounterCommand? Command, BatchCommand? Batch, Requester Requester, string? Key, bool OtherRequest)
    {
        public string Describe => Command is { } command ? CounterModel.Describe(command) : $"batch of {Batch!.Operations.Count}, atomic {Batch.Atomic}";

        public PendingRequest ToRequest()
        {
            var body = Command is { } command ? CounterModel.Describe(command) : string.Join(";", Batch!.Operations.Select(CounterModel.Describe));
            var idempotency = Key is null ? null : new IdempotencyKey(Requester.KeyId ?? "admin", Key,
                IdempotencyKey.FingerprintOf("POST", OtherRequest ? "/other" : "/x", string.Empty, Encoding.UTF8.GetBytes(body)));
            return Command is { } single ? PendingRequest.For(single, idempotency, Requester) : PendingRequest.For(Batch!, idempotency, Requester);
        }
    }
}
