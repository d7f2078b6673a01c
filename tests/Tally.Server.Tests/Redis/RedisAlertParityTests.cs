using System.Text;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Tally.Server.Alerts;
using Tally.Server.Batch;
using Tally.Server.Configuration;
using Tally.Server.Counters;
using Tally.Server.Idempotency;
using Tally.Server.Pipeline;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Counters;
using Tally.Server.Tests.Infrastructure;
using Tally.Server.Tests.Storage;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// tally.lua's alert state machine against the C# one (AlertEvaluator), side by side: the same random commits (single
/// commands and batches, atomic or not, some replayed by an idempotency key; values near ±2^63, deletions, re-creations)
/// go to the memory store, whose changes the C# evaluator reads, and to Redis, which evaluates inside its commit; every
/// event Redis writes to its outbox must be the C# one, in the same order, to the byte.
/// </summary>
[Trait("Layer", "Process")]
public sealed class RedisAlertParityTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static readonly AlertDefinition[] Alerts =
    [
        Alert("a-high", "a", null, AlertDirection.Above, 0, -5),
        Alert("a-top", "a", null, AlertDirection.Above, long.MaxValue - 2, null),
        Alert("b-low", "b", null, AlertDirection.Below, 0, null),
        Alert("b-bottom", "b", null, AlertDirection.Below, long.MinValue + 2, long.MinValue + 1000),
        Alert("c-prefix", null, "c:", AlertDirection.Above, 10, 10),
        Alert("every", null, "", AlertDirection.Below, -1000, 1000),
        Alert("muted", null, "", AlertDirection.Above, 5, null, disabled: true),
    ];

    [Theory]
    [InlineData(21)]
    [InlineData(22)]
    [InlineData(23)]
    public async Task EveryEventIsTheOneTheCSharpEvaluatorWrites(int seed)
    {
        var configuration = await redis.ResetAsync();
        var clock = new ManualClock(1_700_000_000_000);
        await using var reference = await Tally.Server.Tests.Quotas.QuotaTesting.OpenAsync("memory", string.Empty, clock, new QuotaOptions());
        await using var connection = RedisStoreRegistration.Connect(configuration);
        var catalog = new AlertCatalog(StoreTesting.Shared.GetRequiredService<Tally.Server.Observability.TallyMetrics>());
        var alerts = new AlertSet(Alerts);
        catalog.Publish(alerts);
        var options = Microsoft.Extensions.Options.Options.Create(new TallyOptions { Store = StoreKind.Redis, Redis = configuration });
        await using var store = ActivatorUtilities.CreateInstance<RedisCounterStore>(StoreTesting.Shared, (IConnectionMultiplexer)connection, clock, options,
            Microsoft.Extensions.Options.Options.Create(new QuotaOptions()), catalog);
        await store.OpenAsync(CancellationToken.None);

        var random = new Random(seed);
        var generator = new CommandGenerator(seed);
        var model = new CounterModel();
        var states = new AlertStateMap();
        var lastEntry = "-";
        var events = 0;
        for (var commit = 0; commit < 400; commit++)
        {
            clock.NowMs += 1 + random.Next(5);
            var drafts = Enumerable.Range(0, random.Next(1, 6)).Select(_ => NextDraft(random, generator, model)).ToList();
            var batch = drafts.Select(draft => draft.ToRequest()).ToList();
            var outcomes = await reference.CommitAsync(batch, CancellationToken.None);
            var expected = AlertEvaluator.Evaluate(alerts, CounterChanges.Of(batch, outcomes), states, clock.NowMs);
            if (expected is not null)
            {
                states.Apply(expected);
            }
            await store.CommitAsync([.. drafts.Select(draft => draft.ToRequest())], CancellationToken.None);

            var written = await connection.GetDatabase().StreamRangeAsync(RedisAlertStore.OutboxKey, lastEntry == "-" ? "-" : "(" + lastEntry);
            if (written.Length > 0)
            {
                lastEntry = written[^1].Id!;
            }
            var want = expected?.Events.Select(e => $"{e.AlertId} {e.TypeName} {e.Payload}").ToList() ?? [];
            var got = written.Select(entry => $"{entry["alert"]} {entry["type"]} {entry["payload"]}").ToList();
            Assert.True(want.SequenceEqual(got),
                $"seed {seed}, commit {commit}:\n  C#    {string.Join("\n        ", want)}\n  redis {string.Join("\n        ", got)}");
            events += got.Count;
        }
        Assert.True(events >= 20, $"Only {events} events in 400 commits: the random commits no longer reach the thresholds.");

        // The states agree too: Redis keeps, per counter, exactly the firing pairs the C# map holds.
        foreach (var name in new[] { "a", "b", "c:d" })
        {
            var firing = (await connection.GetDatabase().HashGetAllAsync("tally:as:" + name))
                .Select(entry => $"{entry.Name}={entry.Value}").Order(StringComparer.Ordinal);
            var held = states.Firing.Where(pair => pair.Key.Counter == name)
                .Select(pair => $"{pair.Key.AlertId}={pair.Value}").Order(StringComparer.Ordinal);
            Assert.Equal(held, firing);
        }
    }

    private static AlertDefinition Alert(string id, string? counter, string? prefix, AlertDirection direction, long threshold, long? resolve, bool disabled = false) =>
        new(id, counter, prefix, direction, threshold, resolve, "https://example.com/hook", WebhookSecret.Generate(), Random.Shared.NextInt64(1, long.MaxValue),
            null, 0, 0, disabled ? 1 : null);

    private static Draft NextDraft(Random random, CommandGenerator generator, CounterModel model)
    {
        var key = random.Next(100) < 20 ? $"k{random.Next(4)}" : null;
        if (random.Next(100) < 35)
        {
            var operations = Enumerable.Range(0, random.Next(1, 6)).Select(_ => Next(generator, model)).ToList();
            return new Draft(null, new BatchCommand(operations, Atomic: random.Next(2) == 0), key);
        }
        return new Draft(Next(generator, model), null, key);
    }

    private static CounterCommand Next(CommandGenerator generator, CounterModel model)
    {
        var command = generator.Next(model);
        model.Apply(command, 0);
        return command;
    }

    private sealed record Draft(CounterCommand? Command, BatchCommand? Batch, string? Key)
    {
        public PendingRequest ToRequest()
        {
            var body = Command is { } command ? CounterModel.Describe(command) : string.Join(";", Batch!.Operations.Select(CounterModel.Describe));
            var idempotency = Key is null ? null : new IdempotencyKey("admin", Key, IdempotencyKey.FingerprintOf("POST", "/x", string.Empty, Encoding.UTF8.GetBytes(body)));
            return Command is { } single ? PendingRequest.For(single, idempotency) : PendingRequest.For(Batch!, idempotency);
        }
    }
}
