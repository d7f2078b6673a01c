using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Tally.Server.Counters;
using Tally.Server.Docs;
using Tally.Server.Http;

namespace Tally.Server.Auth;

/// <summary><c>/admin/keys</c>: create (the secret is shown once), list (no secrets), revoke (at once). Admin scope only.</summary>
internal static class AdminKeyEndpoints
{
    public const string InvalidKeyName = "invalid_key_name";
    public const string InvalidScopes = "invalid_scopes";
    public const string InvalidPrefix = "invalid_prefix";
    public const string KeyNotFound = "key_not_found";
    public const string KeyNotRevocable = "key_not_revocable";
    public const string LastAdminKey = "last_admin_key";

    public static RouteGroupBuilder MapAdminKeys(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/admin/keys").WithTags("Admin").RequireAuthorization(AuthPolicies.Admin).RefuseUnknownQuery();
        group.MapPost("/", CreateKey).WithName("CreateApiKey").WithSummary("Create an API key; its secret is shown this once")
            .WithMetadata(new DocumentedBody(typeof(CreateApiKeyRequest), "application/json"));
        group.MapGet("/", ListKeys).WithName("ListApiKeys").WithSummary("List API keys, without secrets");
        group.MapDelete("/{id}", RevokeKey).WithName("RevokeApiKey").WithSummary("Revoke an API key; it stops working at once")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        return group;
    }

    private static async Task<Results<Created<CreatedApiKeyResponse>, ProblemHttpResult>> CreateKey(
        HttpContext context, ApiKeyStore keys, ILogger<ApiKeyStore> logger)
    {
        var (body, bodyProblem) = await RequestBody.ReadJsonAsync(context.Request);
        if (bodyProblem is ProblemHttpResult problem)
        {
            return problem;
        }
        if (ParseRequest(body, out var request) is { } invalid)
        {
            return invalid;
        }

        ApiKey key;
        string secret;
        try
        {
            (key, secret) = await keys.CreateAsync(request.Name, request.Scopes, request.Prefix, request.Limits, context.RequestAborted);
        }
        catch (ApiKeyStoreException ex)
        {
            return StoreUnavailable(context, logger, ex);
        }
        logger.LogInformation("Created API key {KeyId} '{KeyName}' with scopes {Scopes}, prefix '{Prefix}', maxCounters {MaxCounters}, maxAmount {MaxAmount}",
            key.Id, key.Name, string.Join(' ', ApiKey.Names(key.Scopes)), key.Prefix, key.MaxCounters?.ToString(CultureInfo.InvariantCulture) ?? "default",
            key.MaxAmount?.ToString(CultureInfo.InvariantCulture) ?? "default");

        // The only response that ever carries the secret: no cache may keep it.
        context.Response.Headers.CacheControl = "no-store";
        return TypedResults.Created((string?)null,
            new CreatedApiKeyResponse(key.Id, secret, key.Name, ApiKey.Names(key.Scopes), key.Prefix, key.MaxCounters, key.MaxAmount, key.CreatedAt.UtcDateTime));
    }

    private static Ok<ApiKeyListResponse> ListKeys(ApiKeyStore keys) =>
        TypedResults.Ok(new ApiKeyListResponse([.. keys.List().Select(ApiKeyResponse.From)]));

    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeKey(
        string id, HttpContext context, ApiKeyStore keys, AdminKeyFile adminKeyFile, ILogger<ApiKeyStore> logger)
    {
        if (id == ApiKey.ConfiguredAdminId)
        {
            return Problem(KeyNotRevocable, StatusCodes.Status409Conflict, "Key not revocable",
                "The AdminKey setting is always an admin key; change or remove the setting and restart to retire it.");
        }
        Revocation revocation;
        try
        {
            revocation = await keys.RevokeAsync(id, keepAnAdminKey: true, context.RequestAborted);
        }
        catch (ApiKeyStoreException ex)
        {
            return StoreUnavailable(context, logger, ex);
        }
        switch (revocation)
        {
            case { Outcome: RevocationOutcome.Revoked, Key: { } revoked }:
                logger.LogInformation("Revoked API key {KeyId} '{KeyName}'", revoked.Id, revoked.Name);
                adminKeyFile.ForgetIfHolds(revoked);
                return TypedResults.NoContent();
            case { Outcome: RevocationOutcome.LastAdminKey }:
                return Problems.Create(LastAdminKey,
                    "This is the only admin key and no AdminKey is configured: without it nobody could manage keys. " +
                    "Create another admin key first (or set AdminKey), then revoke this one. Nothing was revoked.");
            default:
                return Problem(KeyNotFound, StatusCodes.Status404NotFound, "Key not found",
                    $"There is no API key '{CounterPrefixAuthorizationHandler.Truncate(id)}' (it may have been revoked already).");
        }
    }

    /// <summary>
    /// <c>{"name": "ci", "scopes": ["read", "write"], "prefix": "shop:", "maxCounters": 100, "maxAmount": 10}</c>;
    /// unknown members are refused.
    /// </summary>
    internal static ProblemHttpResult? ParseRequest(ReadOnlyMemory<byte> body, out CreateKeyRequest request)
    {
        request = new CreateKeyRequest(string.Empty, ApiScopes.None, string.Empty, KeyLimits.None);
        if (RequestParsing.ParseDocument(body, 4, "Send {\"name\": \"ci\", \"scopes\": [\"read\"], \"prefix\": \"\"}.", out var document) is { } problem)
        {
            return problem;
        }
        using (document)
        {
            try
            {
                return ParseObject(document.RootElement, out request);
            }
            catch (InvalidOperationException)
            {
                // An escaped lone surrogate ("\ud800") is valid JSON but not text: reading it as a string throws.
                return Problems.Create(Problems.InvalidBody, "The body holds a string that is not valid Unicode text (an unpaired surrogate).");
            }
        }
    }

    private static ProblemHttpResult? ParseObject(JsonElement root, out CreateKeyRequest request)
    {
        request = new CreateKeyRequest(string.Empty, ApiScopes.None, string.Empty, KeyLimits.None);
        if (root.ValueKind != JsonValueKind.Object)
        {
            return Problems.Create(Problems.InvalidBody, "The body must be an object with name, scopes and, optionally, prefix, maxCounters and maxAmount.");
        }
        string? name = null;
        var scopes = ApiScopes.None;
        var prefix = string.Empty;
        long? maxCounters = null, maxAmount = null;
        foreach (var member in root.EnumerateObject())
        {
            // The members are those CreateApiKeyRequest declares (the document's schema); a name outside it is refused
            // even if a case below still reads it.
            if (!RequestMembers.CreateApiKey.Contains(member.Name))
            {
                return UnknownMember(member.Name);
            }
            switch (member.Name)
            {
                case "name":
                    if (ParseName(member.Value, out name) is { } badName)
                    {
                        return badName;
                    }
                    break;
                case "scopes":
                    if (ParseScopes(member.Value, out scopes) is { } badScopes)
                    {
                        return badScopes;
                    }
                    break;
                case "prefix":
                    if (member.Value.ValueKind != JsonValueKind.String || !CounterName.IsValidPrefix(member.Value.GetString()))
                    {
                        return Problem(InvalidPrefix, StatusCodes.Status400BadRequest, "Invalid prefix",
                            "'prefix' must be \"\" (every counter) or the beginning of a valid counter name, such as \"shop:\".");
                    }
                    prefix = member.Value.GetString()!;
                    break;
                case "maxCounters":
                    if (ParseLimit(member, out maxCounters) is { } badMaxCounters)
                    {
                        return badMaxCounters;
                    }
                    break;
                case "maxAmount":
                    if (ParseLimit(member, out maxAmount) is { } badMaxAmount)
                    {
                        return badMaxAmount;
                    }
                    break;
                default:
                    return UnknownMember(member.Name);
            }
        }
        if (name is null)
        {
            return Problem(InvalidKeyName, StatusCodes.Status400BadRequest, "Invalid key name", "'name' is required: say who or what the key is for.");
        }
        if (scopes == ApiScopes.None)
        {
            return Problem(InvalidScopes, StatusCodes.Status400BadRequest, "Invalid scopes",
                "'scopes' is required: a non-empty array of read, increment, write, admin.");
        }
        if (scopes.HasFlag(ApiScopes.Admin) && prefix.Length > 0)
        {
            return Problem(InvalidPrefix, StatusCodes.Status400BadRequest, "Invalid prefix",
                "An admin key can manage every key, so it cannot be limited to a prefix; use prefix \"\" or other scopes.");
        }
        request = new CreateKeyRequest(name, scopes, prefix, new KeyLimits(maxCounters, maxAmount));
        return null;
    }

    private static ProblemHttpResult UnknownMember(string name) => Problems.Create(Problems.InvalidBody,
        $"Unknown member '{CounterPrefixAuthorizationHandler.Truncate(name)}'; a key has name, scopes, prefix, maxCounters and maxAmount.");

    private static ProblemHttpResult? ParseName(JsonElement element, out string? name)
    {
        name = null;
        if (element.ValueKind != JsonValueKind.String)
        {
            return Problem(InvalidKeyName, StatusCodes.Status400BadRequest, "Invalid key name", "'name' must be a string.");
        }
        try
        {
            name = element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            // An escaped lone surrogate ("\ud800") is valid JSON but not text.
            return Problem(InvalidKeyName, StatusCodes.Status400BadRequest, "Invalid key name", "'name' is not valid Unicode text.");
        }
        return KeyName.Check(name) is { } why ? Problem(InvalidKeyName, StatusCodes.Status400BadRequest, "Invalid key name", why) : null;
    }

    /// <summary><c>maxCounters</c> and <c>maxAmount</c>: an integer of at least 1, or null for the default.</summary>
    private static ProblemHttpResult? ParseLimit(JsonProperty member, out long? limit)
    {
        limit = null;
        if (member.Value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (member.Value.ValueKind == JsonValueKind.Number && member.Value.TryGetInt64(out var value) && value >= 1)
        {
            limit = value;
            return null;
        }
        return Problems.Create(Problems.InvalidBody,
            $"'{member.Name}' must be an integer from 1 to {long.MaxValue}, or null for the default.");
    }

    private static ProblemHttpResult? ParseScopes(JsonElement element, out ApiScopes scopes)
    {
        scopes = ApiScopes.None;
        if (element.ValueKind != JsonValueKind.Array || element.GetArrayLength() == 0)
        {
            return Problem(InvalidScopes, StatusCodes.Status400BadRequest, "Invalid scopes",
                "'scopes' must be a non-empty array of read, increment, write, admin.");
        }
        foreach (var item in element.EnumerateArray())
        {
            var scope = item.ValueKind == JsonValueKind.String ? ApiKey.Parse(item.GetString()) : ApiScopes.None;
            if (scope == ApiScopes.None)
            {
                return Problem(InvalidScopes, StatusCodes.Status400BadRequest, "Invalid scopes",
                    $"Unknown scope {CounterPrefixAuthorizationHandler.Truncate(item.GetRawText())}; the scopes are read, increment, write, admin.");
            }
            scopes |= scope;
        }
        return null;
    }

    private static ProblemHttpResult Problem(string code, int status, string title, string detail)
    {
        var problem = Problems.Details(code, detail);
        problem.Status = status;
        problem.Title = title;
        return TypedResults.Problem(problem);
    }

    private static ProblemHttpResult StoreUnavailable(HttpContext context, ILogger logger, ApiKeyStoreException ex)
    {
        logger.LogError(ex, "A key change could not be stored");
        context.Response.Headers.RetryAfter = "1";
        return Problems.Create(ErrorCodes.StoreUnavailable, "The key store could not write the change; nothing changed. Retry shortly.");
    }
}

internal sealed record CreateKeyRequest(string Name, ApiScopes Scopes, string Prefix, KeyLimits Limits);

/// <summary>A key as listed: never its secret. <c>MaxCounters</c>/<c>MaxAmount</c> are the key's own (null: the default).</summary>
internal sealed record ApiKeyResponse(string Id, string Name, string[] Scopes, string Prefix, long? MaxCounters, long? MaxAmount, DateTime CreatedAt)
{
    public static ApiKeyResponse From(ApiKey key) =>
        new(key.Id, key.Name, ApiKey.Names(key.Scopes), key.Prefix, key.MaxCounters, key.MaxAmount, key.CreatedAt.UtcDateTime);
}

/// <summary>The answer to a creation: the only time <see cref="Key"/>, the secret, is shown.</summary>
internal sealed record CreatedApiKeyResponse(string Id, string Key, string Name, string[] Scopes, string Prefix, long? MaxCounters, long? MaxAmount,
    DateTime CreatedAt);

internal sealed record ApiKeyListResponse(IReadOnlyList<ApiKeyResponse> Items);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(CreatedApiKeyResponse))]
[JsonSerializable(typeof(ApiKeyListResponse))]
[JsonSerializable(typeof(CallerResponse))]
internal sealed partial class AuthJsonContext : JsonSerializerContext;
