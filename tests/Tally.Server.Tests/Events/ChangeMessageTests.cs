using Tally.Server.Counters;
using Tally.Server.Events;
using Tally.Server.Storage.Postgres;

namespace Tally.Server.Tests.Events;

/// <summary>The states of a commit as they travel between instances: whole, in order, and within PostgreSQL's payload limit.</summary>
public class ChangeMessageTests
{
    private static Counter State(string name, long value, long? min = null, long? max = null) =>
        new(name, value, 0, min, max, 7, 1_700_000_000_123, 1_700_000_000_456);

    [Fact]
    public void StatesAndDeletionsComeBackAsTheyWere()
    {
        List<KeyValuePair<string, Counter?>> states =
        [
            new("a", State("a", long.MaxValue, min: long.MinValue, max: long.MaxValue)),
            new("gone", null),
            new("b:1", State("b:1", -5)),
        ];
        var message = Assert.Single(ChangeMessage.Encode("0123456789abcdef", states, PostgresEventRelay.MaxPayloadBytes));

        Assert.True(ChangeMessage.TryDecode(message, out var instance, out var decoded, out var alerts));
        Assert.Equal("0123456789abcdef", instance);
        Assert.Equal(states, decoded);
        Assert.Empty(alerts);
    }

    [Fact]
    public void AlertEventsTravelAfterTheStatesWithTheirPayloadAsSent()
    {
        List<KeyValuePair<string, Counter?>> states = [new("quota:a", State("quota:a", 901))];
        const string Payload = """{"type":"alert.firing","timestamp":"2026-11-30T05:00:00.000Z","data":{"alert":"q","counter":"quota:a","state":"firing","value":901}}""";

        var messages = ChangeMessage.Encode("0123456789abcdef", states, PostgresEventRelay.MaxPayloadBytes, [new RemoteAlert("quota:a", Payload)]);

        Assert.Equal(2, messages.Count);
        Assert.True(ChangeMessage.TryDecode(messages[0], out _, out var decoded, out var none));
        Assert.Equal(states, decoded);
        Assert.Empty(none);
        Assert.True(ChangeMessage.TryDecode(messages[1], out _, out var noStates, out var alerts));
        Assert.Empty(noStates);
        Assert.Equal([new RemoteAlert("quota:a", Payload)], alerts);
        // An instance of the version before, which reads "s" only, still reads the states and takes the alerts' message for none.
        Assert.StartsWith("{\"i\":\"0123456789abcdef\",\"s\":[],\"a\":[", messages[1], StringComparison.Ordinal);
    }

    [Fact]
    public void ACommitTooBigForOnePayloadIsSplitAndNothingIsLost()
    {
        var states = Enumerable.Range(0, 500)
            .Select(i => new KeyValuePair<string, Counter?>($"n{i:D4}{new string('x', 123)}", i % 7 == 0 ? null : State($"n{i:D4}{new string('x', 123)}", i)))
            .ToList();

        var messages = ChangeMessage.Encode("0123456789abcdef", states, PostgresEventRelay.MaxPayloadBytes);

        Assert.True(messages.Count > 1);
        Assert.All(messages, message => Assert.True(System.Text.Encoding.UTF8.GetByteCount(message) < 8000, $"{message.Length} bytes"));
        var decoded = messages.SelectMany(message => ChangeMessage.TryDecode(message, out _, out var part, out _) ? part : throw new InvalidOperationException(message));
        Assert.Equal(states, decoded);
    }

    [Theory]
    [InlineData("")]
    [InlineData("42")]
    [InlineData("""{"i":"x"}""")]
    [InlineData("""{"i":"x","s":[["bad name"]]}""")]
    [InlineData("""{"i":"x","s":[["a",1,2]]}""")]
    [InlineData("""{"i":"x","s":[],"a":[["a","not an object"]]}""")]
    [InlineData("""{"i":"x","s":[],"a":{}}""")]
    [InlineData("""{"i":"x","s":[["a","1",0,null,null,1,0,0]]}""")]
    public void AnythingElseIsNotAMessage(string payload) =>
        Assert.False(ChangeMessage.TryDecode(payload, out _, out _, out _));
}
