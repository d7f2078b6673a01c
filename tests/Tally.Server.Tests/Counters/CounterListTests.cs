using System.Net;
using System.Text.Json.Nodes;
using Tally.Server.Tests.Infrastructure;

namespace Tally.Server.Tests.Counters;

/// <summary><c>GET /counters?prefix=&amp;after=&amp;limit=</c>.</summary>
public class CounterListTests
{
    private static async Task CreateAsync(HttpClient client, IEnumerable<string> names)
    {
        // In parallel: the listing does not care about creation order, and it keeps the tests quick.
        var responses = await Task.WhenAll(names.Select(name => client.IncrementAsync(name)));
        Assert.All(responses, response => Assert.Equal(HttpStatusCode.OK, response.StatusCode));
    }

    private static async Task<CounterPageJson> ListAsync(HttpClient client, string query = "") =>
        await (await client.GetAsync($"/counters{query}")).ReadPageAsync();

    [Fact]
    public async Task EmptyListHasNoItemsAndNullNext()
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().GetAsync("/counters");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Empty(json["items"]!.AsArray());
        Assert.True(json.AsObject().ContainsKey("next") && json["next"] is null);
    }

    [Fact]
    public async Task ItemsAreWholeCountersInOrdinalNameOrder()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        string[] names = ["b", "B", "a", "a.1", "a-1", "a:1", "a_1", "A", "0", "aa"];
        await CreateAsync(client, names);
        await client.SetUpCounterAsync("a", """{"value": 5, "initial": 1, "min": 0, "max": 9}""");

        var page = await ListAsync(client);

        Assert.Equal(names.Order(StringComparer.Ordinal), page.Items.Select(item => item.Name));
        Assert.Null(page.Next);
        Assert.Equal(await client.GetCounterAsync("a"), page.Items.Single(item => item.Name == "a"));
    }

    [Fact]
    public async Task PrefixKeepsOnlyNamesThatStartWithIt()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await CreateAsync(client, ["shop:a", "shop:b", "shop", "shopping", "Shop:c", "other"]);
        Assert.Equal(["shop:a", "shop:b"], (await ListAsync(client, "?prefix=shop:")).Items.Select(item => item.Name));
        Assert.Equal(["shop", "shop:a", "shop:b", "shopping"], (await ListAsync(client, "?prefix=shop")).Items.Select(item => item.Name));
        Assert.Empty((await ListAsync(client, "?prefix=zzz")).Items);
    }

    [Fact]
    public async Task AfterStartsStrictlyAfterTheName()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await CreateAsync(client, ["a", "b", "c", "d"]);
        Assert.Equal(["c", "d"], (await ListAsync(client, "?after=b")).Items.Select(item => item.Name));
        Assert.Equal(["c", "d"], (await ListAsync(client, "?after=bb")).Items.Select(item => item.Name));
        Assert.Equal(["d"], (await ListAsync(client, "?prefix=d&after=a")).Items.Select(item => item.Name));
        Assert.Empty((await ListAsync(client, "?after=d")).Items);
    }

    [Theory]
    [InlineData(25, 10)] // 10, 10, 5
    [InlineData(20, 10)] // an exact multiple: the second page is the last and says so
    [InlineData(7, 1)]
    [InlineData(3, 1000)]
    public async Task PagingWithNextReachesTheEndWithNextNull(int count, int limit)
    {
        await using var app = new TallyApplication(store: "memory");
        var client = app.CreateClient();
        var names = Enumerable.Range(0, count).Select(i => $"p:{i:D3}").ToList();
        await CreateAsync(client, names);
        await CreateAsync(client, ["q:0", "o:0"]); // outside the prefix

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        while (true)
        {
            var page = await ListAsync(client, $"?prefix=p:&limit={limit}" + (after is null ? "" : $"&after={after}"));
            pages++;
            Assert.True(page.Items.Count <= limit);
            seen.AddRange(page.Items.Select(item => item.Name));
            if (page.Next is null)
            {
                break;
            }
            Assert.Equal(limit, page.Items.Count);
            Assert.Equal(page.Items[^1].Name, page.Next);
            after = page.Next;
        }

        Assert.Equal(names, seen);
        Assert.Equal((count + limit - 1) / limit, pages);
    }

    [Fact]
    public async Task DefaultLimitIsOneHundred()
    {
        await using var app = new TallyApplication(store: "memory");
        var client = app.CreateClient();
        var names = Enumerable.Range(0, 150).Select(i => $"n{i:D3}").ToList();
        await CreateAsync(client, names);

        var first = await ListAsync(client);
        Assert.Equal(names.Take(100), first.Items.Select(item => item.Name));
        Assert.Equal("n099", first.Next);

        var second = await ListAsync(client, "?after=n099");
        Assert.Equal(names.Skip(100), second.Items.Select(item => item.Name));
        Assert.Null(second.Next);
    }

    [Theory]
    [InlineData("?limit=0")]
    [InlineData("?limit=1001")]
    [InlineData("?limit=-1")]
    [InlineData("?limit=abc")]
    [InlineData("?limit=1.5")]
    [InlineData("?limit=")]
    [InlineData("?limit=99999999999")]
    [InlineData("?limit=1&limit=2")]
    [InlineData("?prefix=-a")]
    [InlineData("?prefix=a%20b")]
    [InlineData("?prefix=a%2Fb")]
    [InlineData("?after=-a")]
    [InlineData("?after=a*")]
    [InlineData("?order=value")]
    [InlineData("?order=VALUE_DESC")]
    [InlineData("?order=value_desc&after=a")]
    [InlineData("?order=value_desc&limit=1001")]
    public async Task BadQueryIsInvalidQuery(string query)
    {
        await using var app = new TallyApplication();
        var response = await app.CreateClient().GetAsync($"/counters{query}");
        await response.ReadProblemAsync(HttpStatusCode.BadRequest, "invalid_query");
    }

    [Fact]
    public async Task OrderValueDescIsTheTopByValueInOnePageWithinTheKeysPrefix()
    {
        await using var app = new TallyApplication(store: "memory");
        var client = app.CreateClient();
        await client.SetUpCounterAsync("shop:a", """{"value": 3}""");
        await client.SetUpCounterAsync("shop:b", """{"value": 30}""");
        await client.SetUpCounterAsync("shop:c", """{"value": 3}""");
        await client.SetUpCounterAsync("other", """{"value": 300}""");

        var response = await client.GetAsync("/counters?order=value_desc&limit=2&prefix=shop:");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        Assert.Equal(["items"], json.Select(member => member.Key));
        Assert.Equal(["shop:b", "shop:a"], json["items"]!.AsArray().Select(item => (string)item!["name"]!));
        Assert.Equal(30, (long)json["items"]![0]!["value"]!);

        var all = JsonNode.Parse(await client.GetStringAsync("/counters?order=value_desc"))!["items"]!.AsArray();
        Assert.Equal(["other", "shop:b", "shop:a", "shop:c"], all.Select(item => (string)item!["name"]!));
        Assert.Equal(2, (await (await client.GetAsync("/counters?order=name&limit=2")).ReadPageAsync()).Items.Count);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(1000)]
    public async Task LimitAtEitherEndOfItsRangeIsAccepted(int limit)
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await CreateAsync(client, ["a", "b"]);
        var page = await ListAsync(client, $"?limit={limit}");
        Assert.Equal(Math.Min(limit, 2), page.Items.Count);
        Assert.Equal(limit == 1 ? "a" : null, page.Next);
    }

    [Fact]
    public async Task DeletedCountersAreNotListed()
    {
        await using var app = new TallyApplication();
        var client = app.CreateClient();
        await CreateAsync(client, ["a", "b", "c"]);
        await client.DeleteAsync("/counters/b");
        Assert.Equal(["a", "c"], (await ListAsync(client)).Items.Select(item => item.Name));
    }
}
