using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tally.Server.Counters;

/// <summary>A counter as the API shows it.</summary>
internal sealed record CounterResponse(
    string Name,
    long Value,
    long Initial,
    long? Min,
    long? Max,
    long Version,
    DateTime CreatedAt,
    DateTime UpdatedAt)
{
    public static CounterResponse From(Counter counter) => new(
        counter.Name, counter.Value, counter.Initial, counter.Min, counter.Max, counter.Version,
        DateTime.UnixEpoch.AddMilliseconds(counter.CreatedAt), DateTime.UnixEpoch.AddMilliseconds(counter.UpdatedAt));
}

internal sealed record CounterPageResponse(IReadOnlyList<CounterResponse> Items, string? Next);

/// <summary>The top counters by value (<c>order=value_desc</c>): one page, no <c>next</c>.</summary>
internal sealed record CounterTopResponse(IReadOnlyList<CounterResponse> Items);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(CounterResponse))]
[JsonSerializable(typeof(CounterPageResponse))]
[JsonSerializable(typeof(CounterTopResponse))]
[JsonSerializable(typeof(Tally.Server.Backup.ImportResponse))]
[JsonSerializable(typeof(long?))]
[JsonSerializable(typeof(string))]
internal sealed partial class TallyJsonContext : JsonSerializerContext;
