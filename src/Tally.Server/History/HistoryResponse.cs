using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tally.Server.History;

/// <summary>The answer of <c>GET /counters/{name}/history</c>.</summary>
internal sealed record HistoryResponse(string Name, string Interval, IReadOnlyList<HistoryBucketResponse> Buckets);

/// <summary>One bucket as the API shows it: its UTC start, the sums added and subtracted, the sets, the value at its end.</summary>
internal sealed record HistoryBucketResponse(DateTime Start, long Increments, long Decrements, long Sets, long Value)
{
    public static HistoryBucketResponse From(HistoryBucket bucket) =>
        new(DateTime.UnixEpoch.AddMilliseconds(bucket.Start), bucket.Increments, bucket.Decrements, bucket.Sets, bucket.Value);
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(HistoryResponse))]
internal sealed partial class HistoryJsonContext : JsonSerializerContext;
