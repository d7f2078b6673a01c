using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Idempotency;

namespace Tally.Server.Pipeline;

/// <summary>
/// One request waiting in the commit pipeline: a single command or a batch, perhaps guarded by an
/// idempotency key. The store fills in the outcome; the pipeline completes the task only after the
/// commit holding it is durable. Continuations run synchronously: the pipeline completes a whole
/// batch from one thread-pool work item, rather than paying a thread hop per request.
/// </summary>
internal sealed class PendingRequest : TaskCompletionSource<RequestOutcome>
{
    private PendingRequest(CounterCommand? command, BatchCommand? batch, IdempotencyKey? idempotency, Requester? requester)
        : base(TaskCreationOptions.None)
    {
        Command = command;
        Batch = batch;
        Idempotency = idempotency;
        Requester = requester ?? Requester.Unlimited;
    }

    public CounterCommand? Command { get; }

    public BatchCommand? Batch { get; }

    public IdempotencyKey? Idempotency { get; }

    public Requester Requester { get; }

    public RequestOutcome Outcome { get; set; }

    public static PendingRequest For(CounterCommand command, IdempotencyKey? idempotency = null, Requester? requester = null) =>
        new(command, null, idempotency, requester);

    public static PendingRequest For(BatchCommand batch, IdempotencyKey? idempotency = null, Requester? requester = null) =>
        new(null, batch, idempotency, requester);
}

/// <summary>
/// What became of a request. <see cref="Result"/> is the single command's result, or a failure of
/// the whole request (store unavailable, idempotency key reused, quota exceeded). <see cref="Replayed"/>
/// marks the first request's outcome answered again to a retry; <see cref="Response"/> is set only when
/// that first response was kept rendered (records written before the compact form).
/// </summary>
internal readonly record struct RequestOutcome(CommandResult Result, BatchResult? Batch = null, StoredResponse? Response = null, bool Replayed = false);
