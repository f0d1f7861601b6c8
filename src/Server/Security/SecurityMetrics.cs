using Prometheus;

namespace Collab.Server.Security;

/// <summary>The stage at which a token was checked.</summary>
internal enum AuthStage
{
    Handshake,
    Reauth,
}

/// <summary>A limit that refused a request; the label of collab_limit_* metrics.</summary>
internal enum LimitKind
{
    Messages,
    OpsConnection,
    OpsUser,
    PresenceConnection,
    PresenceUser,
    Subscriptions,
    OpSize,
    DocSize,
    ConnectionAttempts,
}

/// <summary>
/// Prometheus metrics of authentication, authorization and abuse limits (prefixes collab_auth_ and
/// collab_limit_). Labelled children are resolved once; hot paths index arrays.
/// </summary>
internal static class SecurityMetrics
{
    private static readonly Counter s_authFailures = Metrics.CreateCounter(
        "collab_auth_failures_total", "Tokens refused, by stage (handshake, reauth) and reason.", "stage", "reason");

    private static readonly Counter s_authSuccesses = Metrics.CreateCounter(
        "collab_auth_success_total", "Tokens accepted, by stage (handshake, reauth).", "stage");

    private static readonly Counter.Child[] s_limitRejections = Children(
        Metrics.CreateCounter("collab_limit_rejections_total", "Requests refused by an abuse limit (answered with an error or HTTP 429), by limit.", "limit"));

    private static readonly Counter.Child[] s_limitCloses = Children(
        Metrics.CreateCounter("collab_limit_closes_total", "Connections closed with 4008 for persisting over a limit, by the limit refused last.", "limit"));

    public static readonly Counter ExpiryWarnings = Metrics.CreateCounter(
        "collab_auth_expiry_warnings_total", "AuthExpiring messages sent before a session's token expired.");

    public static readonly Counter ExpiredCloses = Metrics.CreateCounter(
        "collab_auth_expired_closes_total", "Sessions closed with 4001 because their token expired without a Reauthenticate.");

    public static readonly Counter RevokedCloses = Metrics.CreateCounter(
        "collab_auth_revoked_closes_total", "Open sessions closed because their token (4001) or user (4003) was revoked.", "kind");

    public static readonly Counter Forbidden = Metrics.CreateCounter(
        "collab_auth_forbidden_total", "Requests refused for lack of document rights, by action (subscribe, submit, revoked_on_reauth).", "action");

    public static readonly Counter ClientIdRebound = Metrics.CreateCounter(
        "collab_auth_client_id_rebound_total", "Hellos with a client id this deployment did not issue to the caller (made up, another user's, or unsigned): given a fresh id instead.");

    // Both results exist from the first load on: a series that first appears at 1 has no increase() in Prometheus,
    // so the first failed load would never fire the CollabJwksRefreshFailing alert (deploy/prometheus).
    public static readonly Counter KeySetRefreshes = WithChildren(
        Metrics.CreateCounter("collab_auth_jwks_refresh_total", "JWKS loads, by result (ok, failed).", "result"), "ok", "failed");

    public static readonly Gauge RevocationsActive = Metrics.CreateGauge(
        "collab_auth_revocations", "Revocation entries held by this node.");

    public static readonly Counter UntrackedAddresses = Metrics.CreateCounter(
        "collab_limit_untracked_addresses_total", "Connection attempts let through untracked because the per-address table was full.");

    public static void AuthFailed(AuthStage stage, AuthFailure reason) =>
        s_authFailures.WithLabels(Snake(stage.ToString()), Snake(reason.ToString())).Inc();

    public static void AuthSucceeded(AuthStage stage) => s_authSuccesses.WithLabels(Snake(stage.ToString())).Inc();

    public static void Rejected(LimitKind limit) => s_limitRejections[(int)limit].Inc();

    public static void ClosedOver(LimitKind limit) => s_limitCloses[(int)limit].Inc();

    /// <summary>Requests refused by a limit so far in this process.</summary>
    public static double Rejections(LimitKind limit) => s_limitRejections[(int)limit].Value;

    /// <summary>Connections closed (4008) over a limit so far in this process.</summary>
    public static double Closes(LimitKind limit) => s_limitCloses[(int)limit].Value;

    /// <summary>PascalCase to snake_case label values.</summary>
    internal static string Snake(string name)
    {
        var builder = new System.Text.StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.ToString();
    }

    private static Counter WithChildren(Counter counter, params string[] values)
    {
        foreach (string value in values)
        {
            _ = counter.WithLabels(value);
        }

        return counter;
    }

    private static Counter.Child[] Children(Counter counter)
    {
        LimitKind[] kinds = Enum.GetValues<LimitKind>();
        var children = new Counter.Child[kinds.Length];
        foreach (LimitKind kind in kinds)
        {
            children[(int)kind] = counter.WithLabels(Snake(kind.ToString()));
        }

        return children;
    }
}
