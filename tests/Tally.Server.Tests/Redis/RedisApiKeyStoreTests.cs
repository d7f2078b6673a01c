using StackExchange.Redis;
using Tally.Server.Auth;
using Tally.Server.Storage;
using Tally.Server.Storage.Redis;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Redis;

/// <summary>
/// API keys in a real Redis shared by several instances (each a key store on a connection of its own): changes seen
/// everywhere within a second, by message or by the generation check; one first admin key; the last admin key kept
/// under concurrent deletes; keys that outlive a crash of Redis.
/// </summary>
[Trait("Layer", "Process")]
public class RedisApiKeyStoreTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static readonly TimeSpan OneSecond = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task AKeyCreatedOnOneInstanceWorksOnTheOthersWithinASecond()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        var b = await instances.OpenKeyStoreAsync();
        var c = await instances.OpenKeyStoreAsync();

        var (key, secret) = await a.CreateAsync("shop", ApiScopes.Read | ApiScopes.Write, "shop:", new KeyLimits(100, 10), CancellationToken.None);

        Assert.Same(key, a.Find(secret));
        await RedisInstances.UntilAsync(() => b.Find(secret) is not null && c.Find(secret) is not null, OneSecond, "the new key working on b and c");
        foreach (var seen in new[] { b.Find(secret)!, c.Find(secret)! })
        {
            Assert.Equal((key.Id, key.Name, key.Scopes, key.Prefix, key.CreatedAt, key.MaxCounters, key.MaxAmount),
                (seen.Id, seen.Name, seen.Scopes, seen.Prefix, seen.CreatedAt, seen.MaxCounters, seen.MaxAmount));
            Assert.Equal(key.Hash, seen.Hash);
        }
    }

    [Fact]
    public async Task ARevokedKeyStopsWorkingOnEveryInstanceWithinASecond()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        var b = await instances.OpenKeyStoreAsync();
        var c = await instances.OpenKeyStoreAsync();
        var (key, secret) = await a.CreateAsync("page", ApiScopes.Increment, "", KeyLimits.None, CancellationToken.None);
        await RedisInstances.UntilAsync(() => b.Find(secret) is not null && c.Find(secret) is not null, OneSecond, "the new key working on b and c");

        Assert.Equal(RevocationOutcome.Revoked, (await b.RevokeAsync(key.Id, keepAnAdminKey: true, CancellationToken.None)).Outcome);

        Assert.Null(b.Find(secret));
        await RedisInstances.UntilAsync(() => a.Find(secret) is null && c.Find(secret) is null, OneSecond, "the revoked key refused on a and c");
        Assert.Empty(a.List());
    }

    [Fact]
    public async Task AChangeIsAnnouncedOnTheChannelAndSeenWithoutWaitingForThePoll()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        // b reads the generation only when told: every change here reaches it through pub/sub.
        var b = await instances.OpenKeyStoreAsync(pollInterval: TimeSpan.FromHours(1));
        var messages = new List<string>();
        await instances.Connect().GetSubscriber().SubscribeAsync(RedisChannel.Literal(RedisApiKeyStore.ChangedChannel), (_, message) =>
        {
            lock (messages)
            {
                messages.Add(message.ToString());
            }
        });

        var (key, secret) = await a.CreateAsync("announced", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None);
        await RedisInstances.UntilAsync(() => b.Find(secret) is not null, OneSecond, "the new key working on b");
        await a.RevokeAsync(key.Id, keepAnAdminKey: true, CancellationToken.None);
        await RedisInstances.UntilAsync(() => b.Find(secret) is null, OneSecond, "the revoked key refused on b");

        // Each change publishes the generation it made.
        await RedisInstances.UntilAsync(() => { lock (messages) { return messages.Count == 2; } }, OneSecond, "two messages");
        Assert.Equal(["1", "2"], messages);
    }

    [Fact]
    public async Task AChangeWhoseMessageWasLostIsSeenThroughTheGenerationWithinASecond()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        var b = await instances.OpenKeyStoreAsync();
        var (key, secret) = await a.CreateAsync("unannounced", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None);
        await RedisInstances.UntilAsync(() => b.Find(secret) is not null, OneSecond, "the new key working on b");

        // The key goes as a revocation takes it, but no message is published (as when b was reconnecting).
        var database = instances.Connect().GetDatabase();
        var transaction = database.CreateTransaction();
        _ = transaction.HashDeleteAsync(RedisApiKeyStore.KeysKey, key.Id);
        _ = transaction.StringIncrementAsync(RedisApiKeyStore.GenerationKey);
        Assert.True(await transaction.ExecuteAsync());

        await RedisInstances.UntilAsync(() => a.Find(secret) is null && b.Find(secret) is null, OneSecond, "the deleted key refused on a and b");
    }

    [Fact]
    public async Task FourInstancesStartingTogetherOnAnEmptyRedisCreateExactlyOneFirstAdminKey()
    {
        for (var round = 0; round < 5; round++)
        {
            await using var instances = new RedisInstances(await redis.ResetAsync());
            var stores = Enumerable.Range(0, 4).Select(_ => instances.CreateKeyStore()).ToList();
            var consoles = stores.Select(_ => new StringWriter()).ToList();
            var startups = stores.Select((store, i) => instances.CreateStartup(store, consoles[i])).ToList();

            await Task.WhenAll(startups.Select(startup => Task.Run(async () =>
            {
                await startup.StartAsync(CancellationToken.None);
                await startup.StartedAsync(CancellationToken.None);
            })));

            var printed = consoles.Where(console => console.ToString().Contains("Tally created its first admin key", StringComparison.Ordinal)).ToList();
            Assert.True(printed.Count == 1, $"round {round}: {printed.Count} instances printed a first admin key");
            var secret = printed[0].ToString().Split('\n').Select(line => line.Trim()).Single(line => line.StartsWith(ApiKeySecret.Marker, StringComparison.Ordinal));
            await RedisInstances.UntilAsync(() => stores.All(store => store.Find(secret) is { Scopes: ApiScopes.Admin }), OneSecond,
                $"round {round}: the first admin key working on every instance");
            Assert.All(stores, store => Assert.Single(store.List()));
            Assert.Equal(1, await instances.Connect().GetDatabase().HashLengthAsync(RedisApiKeyStore.KeysKey));
        }
    }

    [Fact]
    public async Task TwoInstancesRevokingTheOnlyTwoAdminKeysAtOnceLeaveOne()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        var b = await instances.OpenKeyStoreAsync();
        var database = instances.Connect().GetDatabase();
        var (survivor, _) = (await a.CreateFirstAdminAsync(CancellationToken.None))!.Value;

        for (var round = 0; round < 20; round++)
        {
            var (second, _) = await a.CreateAsync($"admin {round}", ApiScopes.Admin, "", KeyLimits.None, CancellationToken.None);
            await RedisInstances.UntilAsync(() => b.List().Count == 2, OneSecond, $"round {round}: b knowing both admin keys");

            // Each instance still sees two admin keys, so neither refuses by itself: Redis decides.
            var outcomes = await Task.WhenAll(
                Task.Run(() => a.RevokeAsync(survivor.Id, keepAnAdminKey: true, CancellationToken.None)),
                Task.Run(() => b.RevokeAsync(second.Id, keepAnAdminKey: true, CancellationToken.None)));

            Assert.Equal([RevocationOutcome.Revoked, RevocationOutcome.LastAdminKey], outcomes.Select(outcome => outcome.Outcome).OrderBy(outcome => outcome));
            Assert.Equal(1, await database.HashLengthAsync(RedisApiKeyStore.KeysKey));
            Assert.Equal(1, await database.SetLengthAsync(RedisApiKeyStore.AdminKeysKey));
            survivor = outcomes.Single(outcome => outcome.Outcome == RevocationOutcome.LastAdminKey).Key!;
            await RedisInstances.UntilAsync(() => a.List().Count == 1 && b.List().Count == 1, OneSecond, $"round {round}: both instances down to one key");
            Assert.Equal(survivor.Id, Assert.Single(a.List()).Id);
            Assert.Equal(survivor.Id, Assert.Single(b.List()).Id);
        }
    }

    [Fact]
    public async Task TheLastAdminKeyIsKeptButOtherKeysGoAndItGoesWhenAskedWithoutKeeping()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        var (admin, _) = (await a.CreateFirstAdminAsync(CancellationToken.None))!.Value;
        var (reader, _) = await a.CreateAsync("reader", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None);
        Assert.Null(await a.CreateFirstAdminAsync(CancellationToken.None));

        Assert.Equal(RevocationOutcome.LastAdminKey, (await a.RevokeAsync(admin.Id, keepAnAdminKey: true, CancellationToken.None)).Outcome);
        Assert.Equal(RevocationOutcome.Revoked, (await a.RevokeAsync(reader.Id, keepAnAdminKey: true, CancellationToken.None)).Outcome);
        Assert.Equal(RevocationOutcome.NotFound, (await a.RevokeAsync(reader.Id, keepAnAdminKey: true, CancellationToken.None)).Outcome);
        // As ApiKeyStartup takes back a first key it could not save.
        Assert.Equal(RevocationOutcome.Revoked, (await a.RevokeAsync(admin.Id, keepAnAdminKey: false, CancellationToken.None)).Outcome);

        var database = instances.Connect().GetDatabase();
        Assert.Equal(0, await database.HashLengthAsync(RedisApiKeyStore.KeysKey));
        Assert.Equal(0, await database.SetLengthAsync(RedisApiKeyStore.AdminKeysKey));
        Assert.Empty((await instances.OpenKeyStoreAsync()).List());
    }

    [Fact]
    public async Task RedisHoldsEachKeyAsJsonWithTheHashOfItsSecretButNeverTheSecret()
    {
        await using var instances = new RedisInstances(await redis.ResetAsync());
        var a = await instances.OpenKeyStoreAsync();
        var (admin, adminSecret) = (await a.CreateFirstAdminAsync(CancellationToken.None))!.Value;
        var (reader, readerSecret) = await a.CreateAsync("reader", ApiScopes.Read | ApiScopes.Increment, "pages:", new KeyLimits(5, null), CancellationToken.None);

        var database = instances.Connect().GetDatabase();
        var json = (string?)await database.HashGetAsync(RedisApiKeyStore.KeysKey, reader.Id);
        Assert.Equal($$"""{"name":"reader","scopes":["read","increment"],"prefix":"pages:","hash":"{{Convert.ToHexStringLower(reader.Hash)}}","createdAt":{{reader.CreatedAt.ToUnixTimeMilliseconds()}},"maxCounters":5,"maxAmount":null}""", json);
        Assert.Equal([admin.Id], (await database.SetMembersAsync(RedisApiKeyStore.AdminKeysKey)).Select(id => (string)id!));
        Assert.Equal(2, (long)await database.StringGetAsync(RedisApiKeyStore.GenerationKey));

        // Everything Redis holds, as text.
        var everything = new System.Text.StringBuilder();
        foreach (var name in instances.Connect().GetServers().Single().Keys(pattern: "*"))
        {
            everything.AppendLine(name);
            var values = await database.KeyTypeAsync(name) switch
            {
                RedisType.String => [await database.StringGetAsync(name)],
                RedisType.Hash => (await database.HashGetAllAsync(name)).SelectMany(entry => new[] { entry.Name, entry.Value }).ToArray(),
                RedisType.Set => await database.SetMembersAsync(name),
                var type => throw new InvalidOperationException($"{name} is a {type}: unexpected for the key store"),
            };
            everything.AppendJoin('\n', values.Select(value => (string?)value)).AppendLine();
        }
        Assert.Contains(reader.Id, everything.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(adminSecret, everything.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(readerSecret, everything.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeysWrittenBeforeRedisIsKilledAreThereAfterItRestarts()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using var instances = new RedisInstances(server.ConfigurationString);
        var a = await instances.OpenKeyStoreAsync();
        var (_, kept) = await a.CreateAsync("kept", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None);
        var (revoked, gone) = await a.CreateAsync("revoked", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None);
        await a.RevokeAsync(revoked.Id, keepAnAdminKey: true, CancellationToken.None);

        await server.KillAsync();
        await server.StartAsync();

        var later = await instances.OpenKeyStoreAsync();
        Assert.NotNull(later.Find(kept));
        Assert.Null(later.Find(gone));
        Assert.Single(later.List());
    }

    [Fact]
    public async Task WhileRedisIsDownKnownKeysStillWorkAndAChangeFailsChangingNothing()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using var instances = new RedisInstances(server.ConfigurationString);
        var a = await instances.OpenKeyStoreAsync();
        var b = await instances.OpenKeyStoreAsync();
        var (key, secret) = await a.CreateAsync("steady", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None);
        await RedisInstances.UntilAsync(() => b.Find(secret) is not null, OneSecond, "the new key working on b");

        await server.KillAsync();
        await Assert.ThrowsAsync<ApiKeyStoreException>(() => a.CreateAsync("refused", ApiScopes.Read, "", KeyLimits.None, CancellationToken.None));
        await Assert.ThrowsAsync<ApiKeyStoreException>(() => a.RevokeAsync(key.Id, keepAnAdminKey: true, CancellationToken.None));
        Assert.NotNull(a.Find(secret));
        Assert.NotNull(b.Find(secret));
        Assert.Single(a.List());

        await server.StartAsync();
        // The connections come back by themselves; the revocation then reaches b as any other.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                Assert.Equal(RevocationOutcome.Revoked, (await a.RevokeAsync(key.Id, keepAnAdminKey: true, CancellationToken.None)).Outcome);
                break;
            }
            catch (ApiKeyStoreException) when (clock.Elapsed < TimeSpan.FromSeconds(15))
            {
                await Task.Delay(50);
            }
        }
        // b reconnects on its own schedule (the client retries about every second), then hears of it or reads it.
        await RedisInstances.UntilAsync(() => b.Find(secret) is null, TimeSpan.FromSeconds(5), "the revoked key refused on b");
    }

    [Fact]
    public async Task OpeningWhileRedisDoesNotAnswerFailsSayingSo()
    {
        await using var server = await RedisServer.StartNewAsync();
        await server.KillAsync();
        await using var instances = new RedisInstances(server.ConfigurationString);

        var error = await Assert.ThrowsAsync<StoreStartupException>(() => instances.OpenKeyStoreAsync());

        Assert.StartsWith("Redis cannot be used to load the API keys", error.Message, StringComparison.Ordinal);
    }
}
