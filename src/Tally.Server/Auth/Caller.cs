using System.Security.Claims;
using Tally.Server.Counters;
using Tally.Server.Http;

namespace Tally.Server.Auth;

/// <summary>The claims the API-key scheme puts on a request's <see cref="ClaimsPrincipal"/>.</summary>
internal static class TallyClaims
{
    /// <summary>The key's id; idempotency keys are scoped to it.</summary>
    public const string KeyId = Submission.CallerClaim;

    public const string KeyName = "tally:key_name";

    /// <summary>One claim per scope the key was given (<c>read</c>, <c>increment</c>, <c>write</c>, <c>admin</c>).</summary>
    public const string Scope = "tally:scope";

    /// <summary>The counter-name prefix the key may touch ("" = all).</summary>
    public const string Prefix = "tally:prefix";
}

/// <summary>Who sent a request, as far as authorization cares: the key, what it may do and where.</summary>
internal sealed record Caller(string KeyId, ApiScopes Scopes, string Prefix)
{
    /// <summary>The caller of an authenticated request, or null.</summary>
    public static Caller? From(ClaimsPrincipal user)
    {
        if (user.Identity?.IsAuthenticated != true || user.FindFirstValue(TallyClaims.KeyId) is not { } id)
        {
            return null;
        }
        var scopes = ApiScopes.None;
        foreach (var claim in user.FindAll(TallyClaims.Scope))
        {
            scopes |= ApiKey.Parse(claim.Value);
        }
        return new Caller(id, scopes, user.FindFirstValue(TallyClaims.Prefix) ?? string.Empty);
    }

    public static ClaimsPrincipal PrincipalOf(ApiKey key, string authenticationType) =>
        PrincipalOf(key.Id, key.Name, key.Scopes, key.Prefix, authenticationType);

    public static ClaimsPrincipal PrincipalOf(string id, string name, ApiScopes scopes, string prefix, string authenticationType)
    {
        List<Claim> claims = [new(TallyClaims.KeyId, id), new(TallyClaims.KeyName, name), new(TallyClaims.Prefix, prefix)];
        claims.AddRange(ApiKey.Names(scopes).Select(scope => new Claim(TallyClaims.Scope, scope)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, authenticationType, TallyClaims.KeyName, roleType: null));
    }

    /// <summary>The counter-name prefix of the request's key ("" = all, and without a key).</summary>
    public static string PrefixOf(ClaimsPrincipal user) => From(user)?.Prefix ?? string.Empty;

    /// <summary>Whether the key's scopes grant <paramref name="needed"/>: admin grants all, write grants increment.</summary>
    public bool Allows(ApiScopes needed) => (ApiKey.Effective(Scopes) & needed) == needed;

    public bool Covers(string counterName) => counterName.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The scope an operation needs: get is read, increment is increment, every other change is write.</summary>
    public static ApiScopes ScopeFor(CommandKind kind) => kind switch
    {
        CommandKind.Get => ApiScopes.Read,
        CommandKind.Increment => ApiScopes.Increment,
        _ => ApiScopes.Write,
    };

    public string DescribeScopes() => Scopes == ApiScopes.None ? "none" : string.Join(", ", ApiKey.Names(Scopes));
}
