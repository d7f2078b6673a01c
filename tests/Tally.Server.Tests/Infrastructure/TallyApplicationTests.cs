using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Tally.Server.Tests.Infrastructure;

/// <summary>The test host itself: what other tests rely on.</summary>
public class TallyApplicationTests
{
    [Fact]
    public async Task AFakeClockDecidesCounterTimesSoTestsAdvanceItInsteadOfSleeping()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));
        await using var app = new TallyApplication("memory", clock: clock);
        var client = app.CreateClient();

        var created = await (await client.IncrementAsync("timed")).ReadCounterAsync();
        clock.Advance(TimeSpan.FromMinutes(5));
        var updated = await (await client.IncrementAsync("timed")).ReadCounterAsync();

        Assert.Equal(clock.Start.UtcDateTime, created.CreatedAt.ToUniversalTime());
        Assert.Equal(clock.Start.UtcDateTime.AddMinutes(5), updated.UpdatedAt.ToUniversalTime());
        Assert.Equal(created.CreatedAt, updated.CreatedAt);
    }

    /// <summary>A GET on a counter named "events" is a counter read, checked like any other; only the two event routes are streams.</summary>
    [Fact]
    public async Task AnAnswerThatDisagreesWithTheDocumentFailsItsOwnRequest()
    {
        await using var app = new TallyApplication("memory");
        var client = app.WithWebHostBuilder(builder => builder.ConfigureServices(services =>
            services.AddSingleton<IStartupFilter>(new Answer("/counters/events", """{"name": 7}""")))).CreateClient();

        var failure = await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync("/counters/events"));

        Assert.Contains("GET /counters/events: the answer disagrees with the OpenAPI document", failure.ToString(), StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await client.GetAsync("/counters")).StatusCode); // the next request is checked on its own
    }

    [Fact]
    public async Task AMismatchNeverHidesTheTestsOwnFailure()
    {
        var app = new TallyApplication("memory");
        var client = app.WithWebHostBuilder(builder => builder.ConfigureServices(services =>
            services.AddSingleton<IStartupFilter>(new Answer("/counters/wrong", """{"name": 7}""")))).CreateClient();

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await using (app)
            {
                // The request fails with the mismatch (the test above); this test swallows that, then fails its own way.
                await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync("/counters/wrong"));
                throw new InvalidOperationException("the test's own failure");
            }
        });

        Assert.Equal("the test's own failure", thrown.Message);
    }

    [Theory]
    [InlineData("/events", true)]
    [InlineData("/counters/page:home/events", true)]
    [InlineData("/counters/events", false)]
    [InlineData("/counters/events/history", false)]
    [InlineData("/counters/a/b/events", false)]
    [InlineData("/counters//events", false)]
    [InlineData("/alerts/events", false)]
    public void OnlyTheEventRoutesAreStreams(string path, bool stream) =>
        Assert.Equal(stream, OpenApiResponseCheck.IsEventStream(path));

    /// <summary>Answers one path itself, inside the response check, with a body the document does not allow.</summary>
    private sealed class Answer(string path, string body) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, following) =>
            {
                if (context.Request.Path == path)
                {
                    context.Response.ContentType = "application/json";
                    await context.Response.WriteAsync(body);
                    return;
                }
                await following(context);
            });
            next(app);
        };
    }
}
