namespace Collab.Server.Sessions;

/// <summary>
/// Document id format: 1–128 characters from [A-Za-z0-9._:/-], not starting with '/' or '.'.
/// Ids end up in NATS subjects, SQL and logs, so the server accepts nothing wider; authorization
/// patterns (prefixes like "org1/") rely on '/' as a separator.
/// </summary>
public static class DocumentId
{
    public const int MaxLength = 128;

    public static bool IsValid(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength || id[0] == '/' || id[0] == '.')
        {
            return false;
        }

        foreach (char c in id)
        {
            bool ok = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '_' or ':' or '/' or '-';
            if (!ok)
            {
                return false;
            }
        }

        return !id.Contains("..", StringComparison.Ordinal);
    }
}

/// <summary>The client id alphabet a Hello may use (what <see cref="ClientIdIssuer"/> issues is 32 of these; any other id in it is answered with a fresh one).</summary>
public static class ClientId
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
