using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using Collab.Engine.Text;

namespace Collab.LoadTest.Client;

/// <summary>The <c>a</c> (action) of a ShareDB message (sharedb/lib/message-actions.js), as far as the light client uses them.</summary>
internal enum ShareDbAction
{
    /// <summary>No or an unknown action.</summary>
    None,

    /// <summary><c>init</c>: the legacy greeting every agent sends on connect (protocol, id, default type).</summary>
    Init,

    /// <summary><c>hs</c>: handshake; the reply carries the client id (<c>src</c> of this client's ops).</summary>
    Handshake,

    /// <summary><c>s</c>: subscribe; the reply holds the snapshot (subscribed from no version) or nothing (from a version: the ops came first).</summary>
    Subscribe,

    /// <summary><c>f</c>: fetch; with a version, the server sends the ops since it, then the reply.</summary>
    Fetch,

    /// <summary><c>op</c>: an op (broadcast or catch-up), or the acknowledgement of this client's own submit (no op body).</summary>
    Op,

    /// <summary><c>pp</c>: the protocol's ping and pong (no payload: pongs are matched in order).</summary>
    PingPong,

    /// <summary>Any other action (queries, presence, bulk): not used by the load test.</summary>
    Other,
}

/// <summary>What an <c>op</c> message carries besides its header.</summary>
internal enum ShareDbOpBody
{
    /// <summary>No op, create or del: the acknowledgement of a submit.</summary>
    None,

    /// <summary><c>op</c>: an edit, a text-unicode op in its JSON form.</summary>
    Edit,

    /// <summary><c>create</c>: the document's creation (<c>{type, data}</c>).</summary>
    Create,

    /// <summary><c>del</c>: the document's deletion.</summary>
    Delete,
}

/// <summary>
/// One ShareDB message, parsed in place: string fields are slices of the message's UTF-8 bytes (JSON escapes
/// undone only when the message has any, which ShareDB ids and the load test's ops never do), the op body and the
/// snapshot data as raw JSON.
/// </summary>
internal ref struct ShareDbMessage
{
    public ShareDbAction Action;

    public ReadOnlySpan<byte> Collection;

    public ReadOnlySpan<byte> DocId;

    /// <summary><c>v</c>: an op's version (the document's version before it), a request's version; -1 when absent or null.</summary>
    public long Version;

    /// <summary><c>src</c>: the client id of an op's author.</summary>
    public ReadOnlySpan<byte> Src;

    /// <summary><c>seq</c>: the author's op sequence number (0 when absent).</summary>
    public ulong Seq;

    /// <summary><c>id</c> of a handshake (the client id), as a string.</summary>
    public string? Id;

    /// <summary><c>protocol</c> of init and handshake messages (0 when absent).</summary>
    public int Protocol;

    public ShareDbOpBody Body;

    /// <summary>The raw JSON of <c>op</c> (an array) or <c>create</c> (an object), by <see cref="Body"/>.</summary>
    public ReadOnlySpan<byte> OpJson;

    /// <summary>Whether the message has <c>data</c> (a fetch or subscribe reply with a snapshot).</summary>
    public bool HasSnapshot;

    /// <summary>The snapshot's version (<c>data.v</c>).</summary>
    public long SnapshotVersion;

    /// <summary>The snapshot's text (<c>data.data</c>); null when the document does not exist (no type).</summary>
    public string? SnapshotText;

    /// <summary>The snapshot's type URI (<c>data.type</c>); null when the document does not exist.</summary>
    public string? SnapshotType;

    /// <summary>The error a request was answered with (<c>error.code</c>, e.g. ERR_OP_SUBMIT_REJECTED); null when none.</summary>
    public string? ErrorCode;

    public string? ErrorMessage;
}

/// <summary>
/// ShareDB's JSON wire protocol as its client speaks it (sharedb 7, protocol 1.2; sharedb/lib/client/connection.js
/// and agent.js), for the light clients: parsing with <see cref="Utf8JsonReader"/> over the received bytes (no
/// allocation for ops and acks), and writing the few messages a client sends directly as UTF-8. Ops are
/// text-unicode's JSON form: a number retains, a string inserts, <c>{"d": n}</c> or <c>{"d": "text"}</c> deletes;
/// lengths count code points.
/// </summary>
internal static class ShareDbWire
{
    /// <summary>The protocol version the client announces (sharedb/lib/protocol.js).</summary>
    public const int ProtocolMajor = 1;

    public const int ProtocolMinor = 2;

    /// <summary>text-unicode's type URI (ot-text-unicode's <c>type.uri</c>).</summary>
    public const string TextUnicodeUri = "http://sharejs.org/types/text-unicode";

    /// <summary>The collection the load test's documents live in.</summary>
    public static ReadOnlySpan<byte> Collection => "loadtest"u8;

    private static readonly JsonReaderOptions s_options = new() { MaxDepth = 64 };

    /// <summary>Parses one message; throws <see cref="JsonException"/> (or <see cref="WireFormatException"/>) on malformed JSON.</summary>
    public static ShareDbMessage Parse(ReadOnlySpan<byte> json)
    {
        var message = new ShareDbMessage { Version = -1, SnapshotVersion = -1 };
        var reader = new Utf8JsonReader(json, s_options);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new WireFormatException("a ShareDB message is a JSON object");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            ReadOnlySpan<byte> name = reader.ValueSpan;
            bool escapedName = reader.ValueIsEscaped;
            reader.Read();
            if (escapedName)
            {
                reader.Skip(); // none of the fields below has an escaped name
                continue;
            }

            switch (name.Length)
            {
                case 1 when name[0] == (byte)'a':
                    message.Action = ReadAction(ref reader);
                    break;
                case 1 when name[0] == (byte)'c':
                    message.Collection = ReadString(ref reader);
                    break;
                case 1 when name[0] == (byte)'d':
                    message.DocId = ReadString(ref reader);
                    break;
                case 1 when name[0] == (byte)'v':
                    message.Version = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : -1;
                    break;
                case 3 when name.SequenceEqual("src"u8):
                    message.Src = ReadString(ref reader);
                    break;
                case 3 when name.SequenceEqual("seq"u8):
                    message.Seq = reader.TokenType == JsonTokenType.Number ? reader.GetUInt64() : 0;
                    break;
                case 2 when name.SequenceEqual("id"u8):
                    message.Id = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                    break;
                case 8 when name.SequenceEqual("protocol"u8):
                    message.Protocol = reader.TokenType == JsonTokenType.Number ? reader.GetInt32()
                        : reader.TokenType == JsonTokenType.String && int.TryParse(reader.GetString(), out int p) ? p : 0;
                    break;
                case 2 when name.SequenceEqual("op"u8):
                    message.Body = ShareDbOpBody.Edit;
                    message.OpJson = ReadRaw(ref reader, json);
                    break;
                case 6 when name.SequenceEqual("create"u8):
                    message.Body = ShareDbOpBody.Create;
                    message.OpJson = ReadRaw(ref reader, json);
                    break;
                case 3 when name.SequenceEqual("del"u8):
                    message.Body = reader.TokenType == JsonTokenType.True ? ShareDbOpBody.Delete : message.Body;
                    reader.Skip();
                    break;
                case 4 when name.SequenceEqual("data"u8):
                    ReadSnapshot(ref reader, ref message);
                    break;
                case 5 when name.SequenceEqual("error"u8):
                    ReadError(ref reader, ref message);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        return message;
    }

    /// <summary>Code points an op adds to (positive) or removes from (negative) the document.</summary>
    public static long LengthDelta(ReadOnlySpan<byte> opJson)
    {
        long delta = 0;
        var reader = new Utf8JsonReader(opJson, s_options);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            throw new WireFormatException("a text-unicode op is a JSON array");
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String:
                    delta += CodePointsOf(ref reader);
                    break;
                case JsonTokenType.StartObject:
                    delta -= ReadDeleteLength(ref reader);
                    break;
                case JsonTokenType.Number:
                    break;
                default:
                    throw new WireFormatException("a text-unicode op component is a number, a string or {\"d\": ...}");
            }
        }

        return delta;
    }

    /// <summary>The code points a create message's initial data holds (<c>create.data</c>; absent counts as empty).</summary>
    public static long CreateLength(ReadOnlySpan<byte> createJson)
    {
        string? data = ReadCreate(createJson).Data;
        return data is null ? 0 : CountCodePoints(data);
    }

    /// <summary>The text-unicode op in its JSON form as an Engine <see cref="TextOp"/> (for text replicas).</summary>
    public static TextOp DecodeOp(ReadOnlySpan<byte> opJson)
    {
        var components = new List<TextComponent>();
        var reader = new Utf8JsonReader(opJson, s_options);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            throw new WireFormatException("a text-unicode op is a JSON array");
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.Number:
                    int retain = reader.GetInt32();
                    if (retain > 0)
                    {
                        components.Add(TextComponent.Retain(retain));
                    }

                    break;
                case JsonTokenType.String:
                    string text = reader.GetString()!;
                    if (text.Length > 0)
                    {
                        components.Add(TextComponent.Insert(text));
                    }

                    break;
                case JsonTokenType.StartObject:
                    int deleted = ReadDeleteLength(ref reader);
                    if (deleted > 0)
                    {
                        components.Add(TextComponent.Delete(deleted));
                    }

                    break;
                default:
                    throw new WireFormatException("a text-unicode op component is a number, a string or {\"d\": ...}");
            }
        }

        return TextOp.Create(components.ToArray());
    }

    /// <summary>The op that a create message amounts to for a replica of an empty document: inserting its data.</summary>
    public static TextOp DecodeCreate(ReadOnlySpan<byte> createJson)
    {
        (string? type, string? data) = ReadCreate(createJson);
        if (type is not null && type != TextUnicodeUri && type != "text-unicode")
        {
            throw new WireFormatException($"the document was created with type '{type}', not text-unicode");
        }

        return string.IsNullOrEmpty(data) ? TextOp.Empty : TextOp.Insert(0, data);
    }

    // ------------------------------------------------------------------ writing

    /// <summary><c>{"a":"hs","id":…,"protocol":1,"protocolMinor":2}</c>; the id of an earlier connection resumes it (it becomes <c>src</c>).</summary>
    public static int WriteHandshake(Span<byte> destination, ReadOnlySpan<byte> clientIdJson)
    {
        var w = new SpanWriter(destination);
        w.Write("{\"a\":\"hs\",\"id\":"u8);
        if (clientIdJson.IsEmpty)
        {
            w.Write("null"u8);
        }
        else
        {
            w.WriteQuoted(clientIdJson);
        }

        w.Write(",\"protocol\":"u8);
        w.WriteNumber(ProtocolMajor);
        w.Write(",\"protocolMinor\":"u8);
        w.WriteNumber(ProtocolMinor);
        w.Write((byte)'}');
        return w.Length;
    }

    /// <summary><c>{"a":"s"|"f","c":…,"d":…,"v":…}</c>: subscribe or fetch, from <paramref name="version"/> (-1: null, i.e. a snapshot).</summary>
    public static int WriteDocRequest(Span<byte> destination, ShareDbAction action, ReadOnlySpan<byte> collectionJson, ReadOnlySpan<byte> docIdJson, long version)
    {
        var w = new SpanWriter(destination);
        w.Write(action switch
        {
            ShareDbAction.Subscribe => "{\"a\":\"s\",\"c\":"u8,
            ShareDbAction.Fetch => "{\"a\":\"f\",\"c\":"u8,
            _ => throw new ArgumentOutOfRangeException(nameof(action), action, "only subscribe and fetch are document requests here"),
        });
        w.WriteQuoted(collectionJson);
        w.Write(",\"d\":"u8);
        w.WriteQuoted(docIdJson);
        w.Write(",\"v\":"u8);
        if (version < 0)
        {
            w.Write("null"u8);
        }
        else
        {
            w.WriteNumber(version);
        }

        w.Write((byte)'}');
        return w.Length;
    }

    /// <summary>The most a <see cref="WriteInsertOp"/> message takes besides its ids and token.</summary>
    public const int InsertOpOverhead = 96;

    /// <summary>
    /// An edit that inserts <paramref name="token"/> (ASCII) at <paramref name="position"/>, as the ShareDB client sends it:
    /// <c>{"a":"op","c":…,"d":…,"v":…,"src":…,"seq":…,"x":{},"op":[position,"token"]}</c>; text-unicode's normal form
    /// drops a leading retain of 0 (<c>["token"]</c>).
    /// </summary>
    public static int WriteInsertOp(Span<byte> destination, ReadOnlySpan<byte> collectionJson, ReadOnlySpan<byte> docIdJson, long version, ReadOnlySpan<byte> srcJson, ulong seq, int position, ReadOnlySpan<byte> token)
    {
        var w = new SpanWriter(destination);
        WriteOpHeader(ref w, collectionJson, docIdJson, version, srcJson, seq);
        w.Write(",\"op\":["u8);
        if (position > 0)
        {
            w.WriteNumber(position);
            w.Write((byte)',');
        }

        w.WriteQuoted(token);
        w.Write("]}"u8);
        return w.Length;
    }

    /// <summary>
    /// The document's creation with <paramref name="textJson"/> (JSON-escaped) as its text-unicode content (what <c>doc.create(text,
    /// 'text-unicode')</c> sends): <c>{"a":"op",…,"v":0,…,"create":{"type":"http://sharejs.org/types/text-unicode","data":"…"}}</c>.
    /// </summary>
    public static int WriteCreate(Span<byte> destination, ReadOnlySpan<byte> collectionJson, ReadOnlySpan<byte> docIdJson, ReadOnlySpan<byte> srcJson, ulong seq, ReadOnlySpan<byte> textJson)
    {
        var w = new SpanWriter(destination);
        WriteOpHeader(ref w, collectionJson, docIdJson, 0, srcJson, seq);
        w.Write(",\"create\":{\"type\":\"http://sharejs.org/types/text-unicode\",\"data\":"u8);
        w.WriteQuoted(textJson);
        w.Write("}}"u8);
        return w.Length;
    }

    /// <summary><c>{"a":"pp"}</c>: ShareDB's ping (the server answers the same).</summary>
    public static ReadOnlySpan<byte> Ping => "{\"a\":\"pp\"}"u8;

    /// <summary>A string's JSON-escaped UTF-8 without the quotes (what the writers above take for ids and text).</summary>
    public static byte[] Escape(string value) => JsonEncodedText.Encode(value).EncodedUtf8Bytes.ToArray();

    private static void WriteOpHeader(ref SpanWriter w, ReadOnlySpan<byte> collectionJson, ReadOnlySpan<byte> docIdJson, long version, ReadOnlySpan<byte> srcJson, ulong seq)
    {
        w.Write("{\"a\":\"op\",\"c\":"u8);
        w.WriteQuoted(collectionJson);
        w.Write(",\"d\":"u8);
        w.WriteQuoted(docIdJson);
        w.Write(",\"v\":"u8);
        w.WriteNumber(version);
        w.Write(",\"src\":"u8);
        w.WriteQuoted(srcJson);
        w.Write(",\"seq\":"u8);
        w.WriteNumber(seq);
        w.Write(",\"x\":{}"u8);
    }

    // ------------------------------------------------------------------ reading helpers

    private static ShareDbAction ReadAction(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            return ShareDbAction.None;
        }

        ReadOnlySpan<byte> a = reader.ValueSpan;
        return a.Length switch
        {
            1 when a[0] == (byte)'s' => ShareDbAction.Subscribe,
            1 when a[0] == (byte)'f' => ShareDbAction.Fetch,
            2 when a.SequenceEqual("op"u8) => ShareDbAction.Op,
            2 when a.SequenceEqual("hs"u8) => ShareDbAction.Handshake,
            2 when a.SequenceEqual("pp"u8) => ShareDbAction.PingPong,
            4 when a.SequenceEqual("init"u8) => ShareDbAction.Init,
            _ => ShareDbAction.Other,
        };
    }

    private static ReadOnlySpan<byte> ReadString(scoped ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            return default;
        }

        // Escapes are rare enough (never in ShareDB's hat ids or the test's document ids) to afford an allocation.
        return reader.ValueIsEscaped ? Encoding.UTF8.GetBytes(reader.GetString()!) : reader.ValueSpan;
    }

    /// <summary>The raw JSON of the value the reader is on (an array or object is skipped over).</summary>
    private static ReadOnlySpan<byte> ReadRaw(scoped ref Utf8JsonReader reader, ReadOnlySpan<byte> json)
    {
        int start = (int)reader.TokenStartIndex;
        reader.Skip();
        return json[start..(int)reader.BytesConsumed];
    }

    private static void ReadSnapshot(ref Utf8JsonReader reader, ref ShareDbMessage message)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        message.HasSnapshot = true;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isV = reader.ValueTextEquals("v"u8);
            bool isData = reader.ValueTextEquals("data"u8);
            bool isType = reader.ValueTextEquals("type"u8);
            reader.Read();
            if (isV && reader.TokenType == JsonTokenType.Number)
            {
                message.SnapshotVersion = reader.GetInt64();
            }
            else if (isData && reader.TokenType == JsonTokenType.String)
            {
                message.SnapshotText = reader.GetString();
            }
            else if (isType && reader.TokenType == JsonTokenType.String)
            {
                message.SnapshotType = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }
    }

    private static void ReadError(ref Utf8JsonReader reader, ref ShareDbMessage message)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            message.ErrorCode = "ERR_UNKNOWN_ERROR";
            message.ErrorMessage = reader.GetString();
            return;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        message.ErrorCode = "ERR_UNKNOWN_ERROR";
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isCode = reader.ValueTextEquals("code"u8);
            bool isMessage = reader.ValueTextEquals("message"u8);
            reader.Read();
            if (isCode && reader.TokenType == JsonTokenType.String)
            {
                message.ErrorCode = reader.GetString();
            }
            else if (isMessage && reader.TokenType == JsonTokenType.String)
            {
                message.ErrorMessage = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }
    }

    private static (string? Type, string? Data) ReadCreate(ReadOnlySpan<byte> createJson)
    {
        var reader = new Utf8JsonReader(createJson, s_options);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new WireFormatException("a create is a JSON object");
        }

        string? type = null;
        string? data = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isType = reader.ValueTextEquals("type"u8);
            bool isData = reader.ValueTextEquals("data"u8);
            reader.Read();
            if (isType && reader.TokenType == JsonTokenType.String)
            {
                type = reader.GetString();
            }
            else if (isData && reader.TokenType == JsonTokenType.String)
            {
                data = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }

        return (type, data);
    }

    /// <summary>A delete component <c>{"d": n}</c> or <c>{"d": "removed text"}</c>: its length in code points.</summary>
    private static int ReadDeleteLength(ref Utf8JsonReader reader)
    {
        int length = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isD = reader.ValueTextEquals("d"u8);
            reader.Read();
            if (isD && reader.TokenType == JsonTokenType.Number)
            {
                length = reader.GetInt32();
            }
            else if (isD && reader.TokenType == JsonTokenType.String)
            {
                length = (int)CodePointsOf(ref reader);
            }
            else
            {
                reader.Skip();
            }
        }

        return length >= 0 ? length : throw new WireFormatException("a text-unicode object component must be a delete {\"d\": ...}");
    }

    private static long CodePointsOf(ref Utf8JsonReader reader) =>
        reader.ValueIsEscaped ? CountCodePoints(reader.GetString()!) : CollabWire.CountCodePoints(reader.ValueSpan);

    private static int CountCodePoints(string text)
    {
        int count = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsLowSurrogate(text[i]))
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Appends bytes and numbers to a span (the caller sizes it; overflow throws).</summary>
    private ref struct SpanWriter(Span<byte> destination)
    {
        private readonly Span<byte> _destination = destination;

        public int Length { get; private set; }

        public void Write(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(_destination[Length..]);
            Length += bytes.Length;
        }

        public void Write(byte b) => _destination[Length++] = b;

        public void WriteQuoted(ReadOnlySpan<byte> escaped)
        {
            Write((byte)'"');
            Write(escaped);
            Write((byte)'"');
        }

        public void WriteNumber(long value)
        {
            if (!Utf8Formatter.TryFormat(value, _destination[Length..], out int written))
            {
                throw new ArgumentException("the destination is too small", nameof(value));
            }

            Length += written;
        }

        public void WriteNumber(ulong value)
        {
            if (!Utf8Formatter.TryFormat(value, _destination[Length..], out int written))
            {
                throw new ArgumentException("the destination is too small", nameof(value));
            }

            Length += written;
        }
    }
}
