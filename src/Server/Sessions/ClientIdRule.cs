namespace Collab.Server.Sessions;

/// <summary>
/// The client id alphabet a Hello may use (what <see cref="ClientIdIssuer"/> issues is 32 of these; any other id in it is
/// answered with a fresh one). Named a rule, not <c>ClientId</c>, so it does not read as the id itself (the SDK's and the
/// wire's <c>ClientId</c> properties).
/// </summary>
public static class ClientIdRule
{
    public const int MaxLength = 64;

    public static bool IsValid(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            return false;
        }

        foreach (char c in id)
        {
            if (!(c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }
}
