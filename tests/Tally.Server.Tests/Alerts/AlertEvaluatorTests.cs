using System.Text.Json.Nodes;
using Tally.Server.Alerts;
using Tally.Server.Counters;

namespace Tally.Server.Tests.Alerts;

/// <summary>The state machine, pure: which changes turn a pair ok → firing → ok, and what each event says.</summary>
public class AlertEvaluatorTests
{
    private const long Now = 1_800_000_000_000;

    private static AlertDefinition Alert(string id = "high", string? counter = "signups", string? prefix = null, AlertDirection direction = AlertDirection.Above,
        long threshold = 1000, long? resolve = null, long revision = 7, long? disabledAt = null) =>
        new(id, counter, prefix, direction, threshold, resolve, "https://example.com/hook", "whsec_" + Convert.ToBase64String(new byte[32]), revision,
            null, 0, 0, disabledAt);

    private static CounterChange Set(string name, long value) =>
        new(name, ChangeKind.Set, 0, new Counter(name, value, 0, null, null, 1, Now, Now));

    private static CounterChange Delete(string name) => new(name, ChangeKind.Delete, 0, null);

    /// <summary>Runs changes one commit each, keeping the states as an engine would; returns the events' (counter, type).</summary>
    private static List<(string Counter, string Type)> Run(AlertSet alerts, AlertStateMap states, params CounterChange[] changes)
    {
        var events = new List<(string, string)>();
        foreach (var change in changes)
        {
            if (AlertEvaluator.Evaluate(alerts, [change], states, Now) is { } outcome)
            {
                states.Apply(outcome);
                events.AddRange(outcome.Events.Select(e => ((string)JsonNode.Parse(e.Payload)!["data"]!["counter"]!, e.TypeName)));
            }
        }
        return events;
    }

    [Fact]
    public void AboveFiresOncePastTheThresholdAndResolvesBackAtIt()
    {
        var alerts = new AlertSet([Alert()]);
        var states = new AlertStateMap();

        var events = Run(alerts, states, Set("signups", 999), Set("signups", 1000), Set("signups", 1001), Set("signups", 5000), Set("signups", 1000), Set("signups", 3));

        // 1000 is not above 1000; 1001 is; staying above sends nothing; back at 1000 resolves; staying below sends nothing.
        Assert.Equal([("signups", "alert.firing"), ("signups", "alert.resolved")], events);
        Assert.Empty(states.Firing);
    }

    [Fact]
    public void HysteresisResolvesOnlyAtOrBelowTheResolveLevel()
    {
        var alerts = new AlertSet([Alert(resolve: 900)]);
        var states = new AlertStateMap();

        Assert.Equal([("signups", "alert.firing")], Run(alerts, states, Set("signups", 1001)));
        Assert.Empty(Run(alerts, states, Set("signups", 950), Set("signups", 901), Set("signups", 1200)));
        Assert.Equal([("signups", "alert.resolved")], Run(alerts, states, Set("signups", 900)));
        Assert.Empty(Run(alerts, states, Set("signups", 999)));
        Assert.Equal([("signups", "alert.firing")], Run(alerts, states, Set("signups", 1001)));
    }

    [Fact]
    public void BelowFiresUnderTheThresholdAndResolvesAtOrAboveResolve()
    {
        var alerts = new AlertSet([Alert(direction: AlertDirection.Below, threshold: 10, resolve: 20)]);
        var states = new AlertStateMap();

        var events = Run(alerts, states, Set("signups", 10), Set("signups", 9), Set("signups", -5), Set("signups", 19), Set("signups", 20), Set("signups", 10));

        Assert.Equal([("signups", "alert.firing"), ("signups", "alert.resolved")], events);
    }

    [Fact]
    public void EveryCrossingWithinOneCommitIsAnEventInOrder()
    {
        var alerts = new AlertSet([Alert()]);
        var outcome = AlertEvaluator.Evaluate(alerts, [Set("signups", 2000), Set("signups", 0), Set("signups", 2000)], new AlertStateMap(), Now)!;

        Assert.Equal(["alert.firing", "alert.resolved", "alert.firing"], outcome.Events.Select(e => e.TypeName));
        Assert.Equal(7, Assert.Single(outcome.States).Value);
        Assert.Equal(3, outcome.Events.Select(e => e.Id).Distinct().Count());
        Assert.All(outcome.Events, e => Assert.Matches("^evt_[0-9a-f]{32}$", e.Id));
    }

    [Fact]
    public void APrefixAlertWatchesEveryCounterUnderItWithAStateEach()
    {
        var alerts = new AlertSet([Alert(counter: null, prefix: "api:")]);
        var states = new AlertStateMap();

        var events = Run(alerts, states, Set("api:a", 2000), Set("web:a", 2000), Set("api:b", 1500), Set("api:a", 2), Set("api", 5000));

        Assert.Equal([("api:a", "alert.firing"), ("api:b", "alert.firing"), ("api:a", "alert.resolved")], events);
        Assert.Equal([("high", "api:b")], states.Firing.Keys);
    }

    [Fact]
    public void DeletingAFiringCounterResolvesItAndACounterCreatedAgainStartsOk()
    {
        var alerts = new AlertSet([Alert()]);
        var states = new AlertStateMap();

        Assert.Equal([("signups", "alert.firing")], Run(alerts, states, Set("signups", 2000)));
        var outcome = AlertEvaluator.Evaluate(alerts, [Delete("signups")], states, Now)!;
        states.Apply(outcome);

        var data = JsonNode.Parse(Assert.Single(outcome.Events).Payload)!["data"]!;
        Assert.Equal("ok", (string?)data["state"]);
        Assert.True((bool)data["deleted"]!);
        Assert.Null(data["value"]);
        Assert.Empty(states.Firing);
        Assert.Null(AlertEvaluator.Evaluate(alerts, [Delete("signups")], states, Now));
        Assert.Equal([("signups", "alert.firing")], Run(alerts, states, Set("signups", 1001)));
    }

    [Fact]
    public void AStateOfAnotherRevisionCountsAsOkAndIsDropped()
    {
        var states = new AlertStateMap();
        Run(new AlertSet([Alert(revision: 1)]), states, Set("signups", 2000));

        // The alert was changed (a new revision): the counter starts over, ok.
        var changed = new AlertSet([Alert(threshold: 5000, revision: 2)]);
        var outcome = AlertEvaluator.Evaluate(changed, [Set("signups", 2001)], states, Now)!;

        Assert.Empty(outcome.Events);
        Assert.Null(Assert.Single(outcome.States).Value);
        Assert.Equal([("signups", "alert.firing")], Run(changed, states, Set("signups", 5001)));
    }

    [Fact]
    public void ADisabledWebhookKeepsTheStatesButWritesNoEvents()
    {
        var alerts = new AlertSet([Alert(disabledAt: Now)]);
        var outcome = AlertEvaluator.Evaluate(alerts, [Set("signups", 2000)], new AlertStateMap(), Now)!;

        Assert.Empty(outcome.Events);
        Assert.Equal(7, Assert.Single(outcome.States).Value);
    }

    [Fact]
    public void NothingWatchedIsNothingToWrite()
    {
        Assert.Null(AlertEvaluator.Evaluate(AlertSet.Empty, [Set("signups", 2000)], new AlertStateMap(), Now));
        Assert.Null(AlertEvaluator.Evaluate(new AlertSet([Alert()]), [Set("other", 2000)], new AlertStateMap(), Now));
        Assert.Null(AlertEvaluator.Evaluate(new AlertSet([Alert()]), [Set("signups", 5)], new AlertStateMap(), Now));
    }

    [Fact]
    public void ThePayloadHasTheStandardWebhooksShapeWithEveryMember()
    {
        var outcome = AlertEvaluator.Evaluate(new AlertSet([Alert(resolve: 900)]), [Set("signups", 1003)], new AlertStateMap(), Now)!;

        Assert.Equal(
            """{"type":"alert.firing","timestamp":"2027-01-15T08:00:00.000Z","data":{"alert":"high","counter":"signups","state":"firing","value":1003,"version":1,"direction":"above","threshold":1000,"resolve":900,"deleted":false}}""",
            Assert.Single(outcome.Events).Payload);
    }

    [Theory]
    [InlineData(true, long.MaxValue, long.MaxValue, false)]
    [InlineData(true, long.MaxValue - 1, long.MaxValue, true)]
    [InlineData(false, long.MinValue, long.MinValue, false)]
    [InlineData(false, long.MinValue + 1, long.MinValue, true)]
    public void ThresholdsAtThe64BitLimitsCompareExactly(bool above, long threshold, long value, bool fires) =>
        Assert.Equal(fires, Alert(direction: above ? AlertDirection.Above : AlertDirection.Below, threshold: threshold).Fires(value));
}
