using Collab.Server.Security;

namespace Collab.Server.Hosting;

/// <summary>/readyz is not ready while a configured JWKS has never loaded (every token would be refused).</summary>
internal sealed class SigningKeysReadinessCheck(SecurityServices security) : IReadinessCheck
{
    public string Name => "auth-keys";

    public ReadinessResult Check() =>
        security.Keys is null || security.Keys.IsReady ? ReadinessResult.Ready : ReadinessResult.NotReady("signing keys not loaded yet");
}
