using System.Globalization;
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

    /// <summary>How many live counters the key may have created; absent: no limit.</summary>
    public const string MaxCounters = "tally:max_counters";

    /// <summary>The largest <c>by</c> the key may send; absent: no limit.</summary>
    public const string MaxAmount = "tally:max_amount";
}

/// <summary>Who sent a request, as far as authorization cares: the key, what it may do, where, and how much.</summary>
/// <param name="MaxCounters">How many live counters the key may have created (null: no limit).</param>
/// <param name="MaxAmount">The largest <c>by</c> of one increment or decrement (null: no limit).</param>
internal sealed record Caller(string KeyId, ApiScopes Scopes, string Prefix, long? MaxCounters = null, long? MaxAmount = null)
{
    /// <summary>The caller of an authenticated request, or null.</summary>
    public static Caller? From(ClaimsPrincipal user)
    {
        // The API-key scheme made the principal with its caller: no claims to read again (several checks ask per request).
        if (user is CallerPrincipal known)
        {
            return known.Caller;
        }
        if (user.Identity?.IsAuthenticated != true || user.FindFirstValue(TallyClaims.KeyId) is not { } id)
        {
            return null;
        }
        var scopes = ApiScopes.None;
        foreach (var claim in user.FindAll(TallyClaims.Scope))
        {
            scopes |= ApiKey.Parse(claim.Value);
        }
        return new Caller(id, scopes, user.FindFirstValue(TallyClaims.Prefix) ?? string.Empty,
            Limit(user, TallyClaims.MaxCounters), Limit(user, TallyClaims.MaxAmount));
    }

    /// <summary>The principal of a stored or configured key, with the limits that hold for it (<see cref="ApiKey.EffectiveLimits"/>).</summary>
    public static ClaimsPrincipal PrincipalOf(ApiKey key, KeyLimits limits, string authenticationType) =>
        PrincipalOf(key.Id, key.Name, key.Scopes, key.Prefix, limits, authenticationType);

    public static ClaimsPrincipal PrincipalOf(string id, string name, ApiScopes scopes, string prefix, KeyLimits limits, string authenticationType)
    {
        List<Claim> claims = [new(TallyClaims.KeyId, id), new(TallyClaims.KeyName, name), new(TallyClaims.Prefix, prefix)];
        claims.AddRange(ApiKey.Names(scopes).Select(scope => new Claim(TallyClaims.Scope, scope)));
        if (limits.MaxCounters is { } maxCounters)
        {
            claims.Add(new Claim(TallyClaims.MaxCounters, maxCounters.ToString(CultureInfo.InvariantCulture), ClaimValueTypes.Integer64));
        }
        if (limits.MaxAmount is { } maxAmount)
        {
            claims.Add(new Claim(TallyClaims.MaxAmount, maxAmount.ToString(CultureInfo.InvariantCulture), ClaimValueTypes.Integer64));
        }
        return new CallerPrincipal(new ClaimsIdentity(claims, authenticationType, TallyClaims.KeyName, roleType: null),
            new Caller(id, scopes, prefix, limits.MaxCounters, limits.MaxAmount));
    }

    /// <summary>A limit claim: absent is no limit; present but unreadable is 0, so a malformed claim never lifts a limit.</summary>
    private static long? Limit(ClaimsPrincipal user, string type) => user.FindFirstValue(type) switch
    {
        null => null,
        var text => long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var limit) ? limit : 0,
    };

    /// <summary>The counter-name prefix of the request's key ("" = all, and without a key).</summary>
    public static string PrefixOf(ClaimsPrincipal user) => From(user)?.Prefix ?? string.Empty;

    /// <summary>Whether the key's scopes grant <paramref name="needed"/>: admin grants all, write grants increment.</summary>
    public bool Allows(ApiScopes needed) => (ApiKey.Effective(Scopes) & needed) == needed;

    public bool Covers(string counterName) => counterName.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Whom the caller's changes count against (the counters it creates are its own).</summary>
    public Pipeline.Requester Requester { get; } = new(KeyId, MaxCounters);

    /// <summary>Whether <paramref name="amount"/>, the <c>by</c> of an increment or decrement, is more than the key may send.</summary>
    public bool RefusesAmount(long amount) => amount > MaxAmount;

    /// <summary>The scope an operation needs: get is read, increment is increment, every other change is write.</summary>
    public static ApiScopes ScopeFor(CommandKind kind) => kind switch
    {
        CommandKind.Get => ApiScopes.Read,
        CommandKind.Increment => ApiScopes.Increment,
        _ => ApiScopes.Write,
    };

    public string DescribeScopes() => Scopes == ApiScopes.None ? "none" : string.Join(", ", ApiKey.Names(Scopes));
}

/// <summary>A principal made by the API-key scheme, carrying its <see cref="Auth.Caller"/> already read.</summary>
internal sealed class CallerPrincipal(ClaimsIdentity identity, Caller caller) : ClaimsPrincipal(identity)
{
    public Caller Caller { get; } = caller;
}
