using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using Tally.Server.Counters;
using Tally.Server.Docs;

namespace Tally.Server.Batch;

/// <summary>
/// The body of <c>POST /batch</c>. <see cref="BatchParsing"/> takes its member lists from these types, and the
/// OpenAPI document its schemas: one operation type per <c>op</c>, each refusing members it does not declare.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record BatchRequest
{
    [Description("All or nothing: with true, either every operation applies or none does.")]
    public bool Atomic { get; init; }

    [MinLength(1), MaxLength(BatchCommand.MaxOperations)]
    [Description("The operations, applied in order.")]
    public required IReadOnlyList<BatchOperation> Ops { get; init; }
}

[JsonPolymorphic(TypeDiscriminatorPropertyName = "op", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(IncrementOperation), "increment")]
[JsonDerivedType(typeof(DecrementOperation), "decrement")]
[JsonDerivedType(typeof(SetOperation), "set")]
[JsonDerivedType(typeof(GetOperation), "get")]
[JsonDerivedType(typeof(ResetOperation), "reset")]
[JsonDerivedType(typeof(DeleteOperation), "delete")]
internal abstract record BatchOperation
{
    [CounterNamePattern]
    public required string Name { get; init; }
}

/// <summary>A batch operation that may carry a condition, like the If-Match header.</summary>
internal abstract record ConditionalOperation : BatchOperation
{
    [IntegerRange(1, long.MaxValue)]
    [Description("Apply only at this version (If-Match), else the operation fails with 412 version_mismatch.")]
    public long IfMatch { get; init; }
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record IncrementOperation : ConditionalOperation
{
    [IntegerRange(1, long.MaxValue)]
    public long By { get; init; } = 1;
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record DecrementOperation : ConditionalOperation
{
    [IntegerRange(1, long.MaxValue)]
    public long By { get; init; } = 1;
}

/// <summary>PUT's fields (<see cref="CounterFieldsRequest"/>) as one operation.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record SetOperation : ConditionalOperation
{
    public long Value { get; init; }

    public long Initial { get; init; }

    public long? Min { get; init; }

    public long? Max { get; init; }
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record GetOperation : BatchOperation;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record ResetOperation : ConditionalOperation;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record DeleteOperation : ConditionalOperation;

/// <summary>The 200 answer of a batch (written by <see cref="Http.ResponseRenderer"/>; this type describes it).</summary>
internal sealed record BatchResponse(IReadOnlyList<BatchResultItem> Results);

/// <summary>One operation's result: its status, and the counter (200, 201), nothing (204) or the problem (4xx).</summary>
internal sealed record BatchResultItem
{
    [IntegerRange(200, 599)]
    public required int Status { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CounterResponse? Counter { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Microsoft.AspNetCore.Mvc.ProblemDetails? Error { get; init; }
}
