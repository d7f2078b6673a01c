using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using Tally.Server.Configuration;

namespace Tally.Server.Auth;

/// <summary>API keys and JWTs, the authorization policies, and rate limiting, wired from ASP.NET Core's building blocks.</summary>
internal static class AuthExtensions
{
    /// <summary>
    /// Registers the <c>ApiKey</c> and JWT schemes (<see cref="JwtAuthentication"/> picks one per request), the policies and the rate limiter (the key store comes with the
    /// engine, from <c>AddTallyStore</c>). Call after <c>AddTallyStore</c>: hosted services start in order,
    /// and the keys are loaded from the store the commit pipeline opens and migrates.
    /// </summary>
    public static IServiceCollection AddTallyAuth(this IServiceCollection services)
    {
        services.AddSingleton(_ => new StartupConsole(Console.Out));
        services.AddSingleton<AdminKeyFile>();
        services.AddHostedService<ApiKeyStartup>();

        services.AddAuthentication(JwtAuthentication.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, configureOptions: null)
            .AddTallyJwt();
        // Without JWT the policy scheme would forward every request to the API keys: the API-key scheme is then the
        // default itself, one handler per request instead of two (docs/profiles.md).
        services.AddOptions<AuthenticationOptions>().Configure<IOptions<JwtOptions>>((authentication, jwt) =>
        {
            if (!jwt.Value.Enabled)
            {
                authentication.DefaultScheme = ApiKeyAuthenticationHandler.SchemeName;
            }
        });
        services.AddAuthorizationBuilder().AddTallyPolicies();
        services.AddSingleton<IAuthorizationHandler, ScopeAuthorizationHandler>();
        services.AddSingleton<IAuthorizationHandler, CounterPrefixAuthorizationHandler>();
        services.AddSingleton<IAuthorizationHandler, BatchOperationsAuthorizationHandler>();
        services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler, ProblemAuthorizationResultHandler>();

        services.AddTallyRateLimiting();
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, AuthJsonContext.Default));
        return services;
    }

    /// <summary>Authentication, then the rate limiter (which partitions by the authenticated key), then authorization.</summary>
    public static WebApplication UseTallyAuth(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();
        return app;
    }
}
