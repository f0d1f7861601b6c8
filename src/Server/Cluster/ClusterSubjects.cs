using System.Text;

namespace Collab.Server.Cluster;

/// <summary>
/// NATS subject names of the cluster (docs/CLUSTER.md, "Subjects"). A NATS token may not contain '.', '*', '>' or
/// white space, while document ids may contain '.', '/' and ':'; ids are therefore escaped into one token: ASCII letters,
/// digits and '-' stay, every other byte of the UTF-8 form becomes '_' plus two upper-case hex digits ("a.b_c" →
/// "a_2Eb_5Fc"). The escape is bijective and keeps subjects readable in <c>nats sub</c>.
/// </summary>
internal static class ClusterSubjects
{
    public const string Heartbeat = "collab.v1.nodes.heartbeat";

    /// <summary>A node's connection resumed a client id: the others close theirs (4009).</summary>
    public const string ClientClaims = "collab.v1.clients.claimed";

    private const string DocPrefix = "collab.v1.doc.";
    private const string NodePrefix = "collab.v1.node.";

    /// <summary>The owner publishes committed batches and version ticks here.</summary>
    public static string Ops(string docId) => DocPrefix + Token(docId) + ".ops";

    /// <summary>Request/reply to the owner: forwarded submits.</summary>
    public static string Submit(string docId) => DocPrefix + Token(docId) + ".submit";

    /// <summary>Every node with subscribers of the document publishes its local clients' presence here.</summary>
    public static string Presence(string docId) => DocPrefix + Token(docId) + ".presence";

    /// <summary>Request/reply to one node: take ownership of a document.</summary>
    public static string Open(string nodeId) => NodePrefix + Token(nodeId) + ".open";

    /// <summary>Escapes <paramref name="value"/> into a single subject token.</summary>
    public static string Token(string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(value);
        var token = new StringBuilder(value.Length + 8);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (Rune rune in value.EnumerateRunes())
        {
            if (rune.IsAscii && (char)rune.Value is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-')
            {
                token.Append((char)rune.Value);
                continue;
            }

            int length = rune.EncodeToUtf8(utf8);
            for (int i = 0; i < length; i++)
            {
                token.Append('_').Append(utf8[i].ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return token.ToString();
    }

    /// <summary>Reverses <see cref="Token"/>; null when <paramref name="token"/> is not a valid escape.</summary>
    public static string? Untoken(string token)
    {
        var bytes = new List<byte>(token.Length);
        for (int i = 0; i < token.Length; i++)
        {
            char c = token[i];
            if (c == '_')
            {
                if (i + 2 >= token.Length
                    || !byte.TryParse(token.AsSpan(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out byte b))
                {
                    return null;
                }

                bytes.Add(b);
                i += 2;
            }
            else if (c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-')
            {
                bytes.Add((byte)c);
            }
            else
            {
                return null;
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
