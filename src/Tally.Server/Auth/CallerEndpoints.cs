using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Http;

namespace Tally.Server.Auth;

/// <summary>
/// <c>GET /auth/me</c>: what the sending key may do (its id, name, scopes, prefix and limits, never its secret),
/// so that a client such as the dashboard can offer only the actions the key allows. Any valid key.
/// </summary>
internal static class CallerEndpoints
{
    public static RouteHandlerBuilder MapCaller(this IEndpointRouteBuilder routes) => routes
        .MapGet("/auth/me", Describe)
        .WithTags("Admin")
        .RequireAuthorization(AuthPolicies.AnyKey)
        .RefuseUnknownQuery()
        .WithName("GetCaller")
        .WithSummary("The sending key's name, scopes, prefix and limits (never its secret)");

    private static Ok<CallerResponse> Describe(ClaimsPrincipal user)
    {
        // AnyKey admits only authenticated requests, and every scheme puts a caller on them.
        var caller = Caller.From(user) ?? throw new InvalidOperationException("An authenticated request without a caller.");
        return TypedResults.Ok(new CallerResponse(caller.KeyId, user.FindFirstValue(TallyClaims.KeyName) ?? caller.KeyId,
            ApiKey.Names(caller.Scopes), caller.Prefix, caller.MaxCounters, caller.MaxAmount));
    }
}

/// <summary>The sending key as <c>GET /auth/me</c> shows it; the limits are those in force (null: none).</summary>
internal sealed record CallerResponse(string Id, string Name, string[] Scopes, string Prefix, long? MaxCounters, long? MaxAmount);
