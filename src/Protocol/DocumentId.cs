namespace Collab.Protocol;

/// <summary>
/// The document id rule of the wire contract (docs/PROTOCOL.md section 11): 1–128 characters from
/// [A-Za-z0-9._:/-], not starting with '/' or '.', and no "..". Ids end up in NATS subjects, SQL and logs, so
/// the server accepts nothing wider; authorization patterns (prefixes like "org1/") rely on '/' as a separator.
/// </summary>
public static class DocumentId
{
    /// <summary>Longest document id, in characters (all of them ASCII, so also in bytes).</summary>
    public const int MaxLength = 128;

    /// <summary>The rule in words, as error messages and the spec state it.</summary>
    public const string Rule = "1-128 characters of [A-Za-z0-9._:/-], not starting with '/' or '.', no '..'";

    /// <summary>Whether <paramref name="id"/> is a valid document id.</summary>
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
