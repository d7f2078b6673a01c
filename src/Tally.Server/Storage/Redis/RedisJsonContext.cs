using System.Text.Json.Serialization;

namespace Tally.Server.Storage.Redis;

/// <summary>Source-generated JSON for the commit answers tally.lua keeps under a commit's id (tally:done:&lt;id&gt;).</summary>
[JsonSerializable(typeof(string[]))]
internal sealed partial class RedisJsonContext : JsonSerializerContext;
