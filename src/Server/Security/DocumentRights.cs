using System.Text.Json;
using Collab.Protocol;

namespace Collab.Server.Security;

/// <summary>
/// What a token lets its holder do with documents, from the rights claim (docs/SECURITY.md, "Rights"):
/// <code>"collab": { "read": ["org1/*", "help/index"], "write": ["org1/drafts/*"] }</code>
/// An entry is an exact document id, a prefix ending in <c>*</c> (matching every id that starts with the
/// text before it), or <c>*</c> alone for every document. Write implies read. Immutable.
/// </summary>
public sealed class DocumentRights
{
    /// <summary>Most patterns one claim may carry (a token is bounded by the header size anyway; this bounds the work per check).</summary>
    public const int MaxPatterns = 256;

    private readonly Grant _read;
    private readonly Grant _write;

    private DocumentRights(Grant read, Grant write)
    {
        _read = read;
        _write = write;
    }

    /// <summary>Every right on every document (anonymous mode).</summary>
    public static DocumentRights All { get; } = new(Grant.Everything, Grant.Everything);

    /// <summary>No right at all.</summary>
    public static DocumentRights None { get; } = new(Grant.Nothing, Grant.Nothing);

    /// <summary>True when the rights allow nothing: such a token has no business on the endpoint.</summary>
    public bool IsEmpty => _read.IsEmpty && _write.IsEmpty;

    /// <summary>Whether the holder may subscribe to <paramref name="docId"/> (and so see its ops, presence and history).</summary>
    public bool CanRead(string docId) => _write.Matches(docId) || _read.Matches(docId);

    /// <summary>Whether the holder may submit ops to <paramref name="docId"/>.</summary>
    public bool CanWrite(string docId) => _write.Matches(docId);

    /// <summary>Builds rights from pattern lists (tests, configuration); throws <see cref="FormatException"/> for an invalid pattern.</summary>
    public static DocumentRights Create(IEnumerable<string> read, IEnumerable<string> write)
    {
        List<string> readList = [.. read];
        List<string> writeList = [.. write];
        if (readList.Count + writeList.Count > MaxPatterns)
        {
            throw new FormatException($"At most {MaxPatterns} document patterns are allowed.");
        }

        return new DocumentRights(Grant.Parse(readList), Grant.Parse(writeList));
    }

    /// <summary>
    /// Parses the rights claim: a JSON object with optional <c>read</c> and <c>write</c> members, each an array
    /// of patterns or a single pattern string. A JSON string holding such an object is accepted too (identity
    /// providers that only emit string claims). Unknown members are ignored; anything malformed throws
    /// <see cref="FormatException"/> (the token is refused: a broken claim must not be read as "no rights").
    /// </summary>
    public static DocumentRights Parse(JsonElement claim)
    {
        if (claim.ValueKind == JsonValueKind.String)
        {
            return ParseJson(claim.GetString()!);
        }

        if (claim.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"The rights claim must be a JSON object, not {claim.ValueKind}.");
        }

        List<string> read = claim.TryGetProperty("read", out JsonElement r) ? Patterns(r, "read") : [];
        List<string> write = claim.TryGetProperty("write", out JsonElement w) ? Patterns(w, "write") : [];
        return Create(read, write);
    }

    /// <summary>Parses the rights claim from JSON text (an object as in <see cref="Parse(JsonElement)"/>).</summary>
    public static DocumentRights ParseJson(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 4 });
        }
        catch (JsonException ex)
        {
            throw new FormatException("The rights claim is a string that does not hold a JSON object.", ex);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"The rights claim must be a JSON object, not {document.RootElement.ValueKind}.");
            }

            return Parse(document.RootElement);
        }
    }

    public override string ToString() => $"read: {_read}; write: {_write}";

    private static List<string> Patterns(JsonElement value, string name)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return [value.GetString()!];
            case JsonValueKind.Array:
                var list = new List<string>(value.GetArrayLength());
                foreach (JsonElement item in value.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String)
                    {
                        throw new FormatException($"'{name}' must hold strings only.");
                    }

                    list.Add(item.GetString()!);
                    if (list.Count > MaxPatterns)
                    {
                        throw new FormatException($"At most {MaxPatterns} document patterns are allowed.");
                    }
                }

                return list;
            default:
                throw new FormatException($"'{name}' must be an array of document patterns.");
        }
    }

    /// <summary>One right (read or write): everything, a set of exact ids, and prefixes.</summary>
    private sealed class Grant
    {
        public static readonly Grant Everything = new(all: true, new HashSet<string>(StringComparer.Ordinal), []);
        public static readonly Grant Nothing = new(all: false, new HashSet<string>(StringComparer.Ordinal), []);

        private readonly bool _all;
        private readonly HashSet<string> _exact;
        private readonly string[] _prefixes;

        private Grant(bool all, HashSet<string> exact, string[] prefixes)
        {
            _all = all;
            _exact = exact;
            _prefixes = prefixes;
        }

        public bool IsEmpty => !_all && _exact.Count == 0 && _prefixes.Length == 0;

        public static Grant Parse(List<string> patterns)
        {
            var exact = new HashSet<string>(StringComparer.Ordinal);
            var prefixes = new List<string>();
            foreach (string pattern in patterns)
            {
                if (pattern == "*")
                {
                    return Everything;
                }

                if (pattern.EndsWith('*'))
                {
                    string prefix = pattern[..^1];

                    // The prefix must be the start of some valid id: checking it with a filler character keeps
                    // one definition of the id alphabet (DocumentId) and rejects "*" in the middle.
                    if (prefix.Length == 0 || !DocumentId.IsValid(prefix + "x"))
                    {
                        throw new FormatException($"'{Truncate(pattern)}' is not a valid document prefix pattern.");
                    }

                    prefixes.Add(prefix);
                }
                else if (DocumentId.IsValid(pattern))
                {
                    exact.Add(pattern);
                }
                else
                {
                    throw new FormatException($"'{Truncate(pattern)}' is neither a document id nor a prefix pattern ending in '*'.");
                }
            }

            return exact.Count == 0 && prefixes.Count == 0 ? Nothing : new Grant(all: false, exact, [.. prefixes]);
        }

        public bool Matches(string docId)
        {
            if (_all || _exact.Contains(docId))
            {
                return true;
            }

            foreach (string prefix in _prefixes)
            {
                if (docId.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        }

        public override string ToString() => _all ? "*" : string.Join(", ", _exact.Concat(_prefixes.Select(p => p + "*")));

        private static string Truncate(string pattern) => pattern.Length <= 64 ? pattern : pattern[..64] + "...";
    }
}
