using Microsoft.Extensions.Options;
using Tally.Server.Auth;
using Tally.Server.Configuration;

namespace Tally.Server.Storage.Memory;

/// <summary>With <c>Store=memory</c>: keys live as long as the process.</summary>
internal sealed class MemoryApiKeyStore(IOptions<TallyOptions> options, TimeProvider clock) : ApiKeyStore(options, clock)
{
    protected override Task<IReadOnlyList<ApiKey>> LoadAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ApiKey>>([]);

    protected override Task InsertAsync(ApiKey key, CancellationToken cancellationToken) => Task.CompletedTask;

    protected override Task DeleteAsync(string id, CancellationToken cancellationToken) => Task.CompletedTask;
}
