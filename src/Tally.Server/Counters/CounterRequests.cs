using System.ComponentModel;
using System.Text.Json.Serialization;
using Tally.Server.Docs;

namespace Tally.Server.Counters;

/// <summary>
/// The body of increment and decrement, <c>{"by": 5}</c>. Its members are the parser's member list
/// (<see cref="Http.RequestParsing.ParseAmount"/>) and its schema is the document's.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
[Description("How much to add or subtract. The same amount may come from the query (?by=5) instead, not from both.")]
internal sealed record AmountRequest
{
    [IntegerRange(1, long.MaxValue)]
    [Description("A positive amount; the default is 1.")]
    public long By { get; init; } = 1;
}

/// <summary>The body of <c>PUT /counters/{name}</c> and of a batch's <c>set</c>: every member optional; <c>min</c>/<c>max</c> may be null (unbounded).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
[Description("The counter's fields, all optional. On create, omitted fields are initial 0, value = initial, no bounds; on update, omitted fields keep their setting.")]
internal sealed record CounterFieldsRequest
{
    [Description("The current value.")]
    public long Value { get; init; }

    [Description("What reset returns to.")]
    public long Initial { get; init; }

    [Description("The inclusive lower bound; null removes it.")]
    public long? Min { get; init; }

    [Description("The inclusive upper bound; null removes it.")]
    public long? Max { get; init; }
}
