using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Batch;
using Tally.Server.Counters;
using Tally.Server.Http;

namespace Tally.Server.Auth;

/// <summary>The authorization policies, one per scope, that endpoints name in <c>RequireAuthorization</c>.</summary>
internal static class AuthPolicies
{
    /// <summary>GET endpoints, inside the key's prefix.</summary>
    public const string Read = "tally:read";

    /// <summary>Increment, inside the key's prefix (also granted by write).</summary>
    public const string Increment = "tally:increment";

    /// <summary>Every counter mutation, inside the key's prefix.</summary>
    public const string Write = "tally:write";

    /// <summary>Everything, and <c>/admin/*</c>.</summary>
    public const string Admin = "tally:admin";

    /// <summary>Any valid key; the endpoint checks what it does (<c>/batch</c>: every operation, with <see cref="BatchAccess"/>).</summary>
    public const string AnyKey = "tally:any-key";

    public static AuthorizationBuilder AddTallyPolicies(this AuthorizationBuilder builder) => builder
        .AddPolicy(Read, policy => policy.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(ApiScopes.Read), CounterPrefixRequirement.Instance))
        .AddPolicy(Increment, policy => policy.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(ApiScopes.Increment), CounterPrefixRequirement.Instance))
        .AddPolicy(Write, policy => policy.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(ApiScopes.Write), CounterPrefixRequirement.Instance))
        .AddPolicy(Admin, policy => policy.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(ApiScopes.Admin)))
        .AddPolicy(AnyKey, policy => policy.RequireAuthenticatedUser());
}

/// <summary>The key must have a scope that grants <see cref="Scope"/>.</summary>
internal sealed class ScopeRequirement(ApiScopes scope) : IAuthorizationRequirement
{
    public ApiScopes Scope { get; } = scope;

    public static string Describe(ApiScopes scope) => scope switch
    {
        ApiScopes.Read => "read (or admin)",
        ApiScopes.Increment => "increment (or write, or admin)",
        ApiScopes.Write => "write (or admin)",
        _ => "admin",
    };
}

internal sealed class ScopeAuthorizationHandler : AuthorizationHandler<ScopeRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ScopeRequirement requirement)
    {
        if (Caller.From(context.User) is { } caller)
        {
            if (caller.Allows(requirement.Scope))
            {
                context.Succeed(requirement);
            }
            else
            {
                context.Fail(new AuthorizationFailureReason(this,
                    $"This key's scopes ({caller.DescribeScopes()}) do not allow this request; it needs {ScopeRequirement.Describe(requirement.Scope)}."));
            }
        }
        return Task.CompletedTask;
    }
}

/// <summary>
/// The counters a request touches must lie inside the key's prefix: the route value <c>name</c>, or
/// for a listing the query <c>prefix</c> (absent or empty: the listing uses the key's prefix).
/// </summary>
internal sealed class CounterPrefixRequirement : IAuthorizationRequirement
{
    public static readonly CounterPrefixRequirement Instance = new();
}

internal sealed class CounterPrefixAuthorizationHandler : AuthorizationHandler<CounterPrefixRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, CounterPrefixRequirement requirement)
    {
        // Endpoint routing authorizes with the HttpContext as the resource; anything else is not allowed.
        if (Caller.From(context.User) is not { } caller || context.Resource is not HttpContext http)
        {
            return Task.CompletedTask;
        }
        if (http.GetRouteValue("name") is string name)
        {
            Decide(context, requirement, caller.Covers(name), $"The counter '{Truncate(name)}' is outside this key's prefix '{caller.Prefix}'.");
        }
        else
        {
            var prefix = http.Request.Query["prefix"].ToString();
            Decide(context, requirement, prefix.Length == 0 || caller.Covers(prefix),
                $"The prefix '{Truncate(prefix)}' is outside this key's prefix '{caller.Prefix}'; leave it out to list the key's counters.");
        }
        return Task.CompletedTask;
    }

    private void Decide(AuthorizationHandlerContext context, CounterPrefixRequirement requirement, bool allowed, string reason)
    {
        if (allowed)
        {
            context.Succeed(requirement);
        }
        else
        {
            context.Fail(new AuthorizationFailureReason(this, reason));
        }
    }

    internal static string Truncate(string text) => text.Length <= 140 ? text : text[..140] + "…";
}

/// <summary>
/// What a key may send, beyond scopes and prefixes: the key's <c>maxAmount</c> bounds the <c>by</c>
/// of one increment or decrement. A check on the request's content, so the endpoint makes it once
/// it has read the amount.
/// </summary>
internal static class CounterAccess
{
    /// <summary>
    /// <c>403 forbidden</c> when <paramref name="amount"/> is more than the request's key may send
    /// (<see cref="Caller.MaxAmount"/>); null when it may (or the key has no limit).
    /// </summary>
    public static ProblemHttpResult? CheckAmount(HttpContext context, long amount) =>
        Caller.From(context.User) is { } caller && caller.RefusesAmount(amount)
            ? Problems.Create(Problems.Forbidden, $"'by' is {amount}; this key may send at most {caller.MaxAmount}. Nothing was applied.")
            : null;
}

/// <summary>
/// <c>/batch</c>: every operation needs the scope of its kind (get: read; increment: increment or
/// write; the rest: write), a name inside the key's prefix and, for increment and decrement, a
/// <c>by</c> within the key's <c>maxAmount</c>, else the whole batch is refused.
/// A resource-based check: the operations are known only once the body is parsed.
/// </summary>
internal static class BatchAccess
{
    public static async Task<IResult?> AuthorizeAsync(HttpContext context, BatchCommand batch)
    {
        var authorization = context.RequestServices.GetRequiredService<IAuthorizationService>();
        var result = await authorization.AuthorizeAsync(context.User, batch, BatchOperationsRequirement.Instance);
        if (result.Succeeded)
        {
            return null;
        }
        var reason = result.Failure?.FailureReasons.OfType<OperationFailureReason>().FirstOrDefault();
        return reason is null
            ? Problems.Create(Problems.Forbidden, "This API key may not make this request.")
            : Problems.Create(Problems.Forbidden, reason.Message, new Dictionary<string, object?> { ["index"] = reason.Index });
    }
}

internal sealed class BatchOperationsRequirement : IAuthorizationRequirement
{
    public static readonly BatchOperationsRequirement Instance = new();
}

internal sealed class OperationFailureReason(IAuthorizationHandler handler, string message, int index)
    : AuthorizationFailureReason(handler, message)
{
    public int Index { get; } = index;
}

internal sealed class BatchOperationsAuthorizationHandler : AuthorizationHandler<BatchOperationsRequirement, BatchCommand>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, BatchOperationsRequirement requirement, BatchCommand batch)
    {
        if (Caller.From(context.User) is not { } caller)
        {
            return Task.CompletedTask;
        }
        for (var i = 0; i < batch.Operations.Count; i++)
        {
            var operation = batch.Operations[i];
            var needed = Caller.ScopeFor(operation.Kind);
            if (!caller.Allows(needed))
            {
                context.Fail(new OperationFailureReason(this,
                    $"ops[{i}]: this key's scopes ({caller.DescribeScopes()}) do not allow '{Tally.Server.Observability.TallyMetrics.OpName(operation.Kind)}'; it needs {ScopeRequirement.Describe(needed)}. Nothing was applied.", i));
                return Task.CompletedTask;
            }
            if (!caller.Covers(operation.Name))
            {
                context.Fail(new OperationFailureReason(this,
                    $"ops[{i}]: the counter '{operation.Name}' is outside this key's prefix '{caller.Prefix}'. Nothing was applied.", i));
                return Task.CompletedTask;
            }
            if (operation.Kind is CommandKind.Increment or CommandKind.Decrement && caller.RefusesAmount(operation.Amount))
            {
                context.Fail(new OperationFailureReason(this,
                    $"ops[{i}]: 'by' is {operation.Amount}; this key may send at most {caller.MaxAmount}. Nothing was applied.", i));
                return Task.CompletedTask;
            }
        }
        context.Succeed(requirement);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Refusals as problem+json: a missing or unknown key challenges the API-key scheme (401 with
/// <c>WWW-Authenticate</c>); a key that may not make the request gets <c>403 forbidden</c> saying why.
/// </summary>
internal sealed class ProblemAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (!authorizeResult.Forbidden)
        {
            return _default.HandleAsync(next, context, policy, authorizeResult);
        }
        var reasons = authorizeResult.AuthorizationFailure?.FailureReasons.Select(reason => reason.Message).ToList() ?? [];
        var detail = reasons.Count > 0 ? string.Join(" ", reasons) : "This API key may not make this request.";
        return Problems.Create(Problems.Forbidden, detail).ExecuteAsync(context);
    }
}
