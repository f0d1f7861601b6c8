using System.Globalization;
using System.Text.RegularExpressions;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Protocol;
using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Sessions;
using Collab.Server.Tests.Security.Infrastructure;
using Collab.Server.Transport;
using Google.Protobuf;

namespace Collab.Server.Tests.Protocol;

/// <summary>
/// docs/PROTOCOL.md section 11, row by row, against the real server over real sockets. For each limit the row's
/// default is the server's default, the Welcome field it names announces it, the setting it names moves it, and going
/// over it has exactly the documented outcome (the error codes and close code named in "On violation", nothing else),
/// while a request at the limit is served.
/// </summary>
public sealed partial class LimitConformanceTests
{
    private static readonly IReadOnlyList<IReadOnlyDictionary<string, string>> s_rows = ProtocolSpec.Table("## 11. Limits");

    private static readonly Dictionary<string, Func<IReadOnlyDictionary<string, string>, Task<Outcome>>> s_checks = new(StringComparer.Ordinal)
    {
        ["Message size"] = MessageSizeAsync,
        ["Op size (encoded)"] = OpSizeAsync,
        ["Presence `user_data`"] = PresenceSizeAsync,
        ["Document size"] = DocumentSizeAsync,
        ["Subscriptions per connection"] = SubscriptionsAsync,
        ["Submits awaiting their outcome per connection"] = SubmitsInFlightAsync,
        ["Message rate per connection"] = MessageRateAsync,
        ["rich-text attributes per component"] = RichAttributesAsync,
        ["rich-text attribute value"] = RichAttributeValueAsync,
        ["rich-text embed"] = RichEmbedAsync,
        ["Document id"] = DocumentIdAsync,
        ["First message (Hello)"] = FirstMessageAsync,
    };

    /// <summary>What going over a limit produced: the errors and the close (null: the connection stayed open); and the Welcome of a default server.</summary>
    private sealed record Outcome(IReadOnlyList<ErrorCode> Errors, ushort? Close, Welcome? DefaultWelcome = null);

    public static TheoryData<string> DocumentedLimits()
    {
        var data = new TheoryData<string>();
        foreach (IReadOnlyDictionary<string, string> row in s_rows)
        {
            data.Add(row["Limit"]);
        }

        return data;
    }

    [Fact]
    public void Every_check_here_belongs_to_a_documented_limit() =>
        Assert.Equal(s_rows.Select(r => r["Limit"]).Order(StringComparer.Ordinal), s_checks.Keys.Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(DocumentedLimits))]
    public async Task The_server_enforces_each_documented_limit_as_the_spec_says(string limit)
    {
        IReadOnlyDictionary<string, string> row = s_rows.Single(r => r["Limit"] == limit);
        Assert.True(s_checks.TryGetValue(limit, out Func<IReadOnlyDictionary<string, string>, Task<Outcome>>? check), $"No conformance check for the limit '{limit}' of docs/PROTOCOL.md section 11.");
        Outcome outcome = await check(row);

        if (ProtocolSpec.WelcomeFieldIn(row["Where announced"]) is { } field)
        {
            Assert.NotNull(outcome.DefaultWelcome);
            object announced = Welcome.Descriptor.FindFieldByName(field)?.Accessor.GetValue(outcome.DefaultWelcome)
                ?? throw new InvalidOperationException($"Welcome has no field '{field}'.");
            Assert.Equal(ProtocolSpec.Quantity(row["Default"]), Convert.ToDouble(announced, CultureInfo.InvariantCulture));
        }

        string onViolation = row["On violation"];
        ErrorCode[] expectedErrors = [.. ProtocolSpec.ErrorNamesIn(onViolation).Select(n => Enum.Parse<ErrorCode>(ProtocolSpec.PascalCase(n)))];
        Assert.Equal(expectedErrors, outcome.Errors.Distinct());
        Assert.Equal(ProtocolSpec.CloseCodeIn(onViolation), (int?)outcome.Close);
    }

    // ------------------------------------------------------------------ one check per row

    private static async Task<Outcome> MessageSizeAsync(IReadOnlyDictionary<string, string> row)
    {
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new TransportOptions().MaxMessageBytes);
        Assert.Equal(ProtocolLimits.DefaultMaxMessageBytes, limit);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);

        // A ClientMessage of exactly the limit (a Ping padded with an unknown field, which receivers ignore) is served.
        await client.Socket.SendBinaryAsync(PaddedPing(nonce: 11, totalBytes: limit));
        Assert.Equal(11ul, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Pong)).Pong.Nonce);

        await client.Socket.SendBinaryAsync(PaddedPing(nonce: 12, totalBytes: limit + 1));
        var before = new List<ServerMessage>();
        ushort close = await client.ReceiveCloseAsync(before);
        return new Outcome(Errors(before), close, client.Welcome);
    }

    private static async Task<Outcome> OpSizeAsync(IReadOnlyDictionary<string, string> row)
    {
        const string doc = "limits/op-size";
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new DocumentOptions().MaxOpBytes);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.OpenAsync(doc);

        TextOp atLimit = LargestInsertWithin(limit);
        await client.SendAsync(WireClient.Submit(doc, 1, 0, atLimit));
        Assert.Equal(1, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);

        TextOp over = TextOp.Insert(0, new string('y', limit));
        Assert.True(TextOpCodec.GetEncodedLength(over) > limit);
        await client.SendAsync(WireClient.Submit(doc, 2, 1, over));
        return await ErrorAndStillOpenAsync(client, client.Welcome);
    }

    private static async Task<Outcome> PresenceSizeAsync(IReadOnlyDictionary<string, string> row)
    {
        const string doc = "limits/presence";
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new DocumentOptions().MaxPresenceUserDataBytes);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient sender = await WireClient.ConnectAsync(server.Port);
        await using WireClient watcher = await WireClient.ConnectAsync(server.Port);
        await sender.OpenAsync(doc);
        await watcher.OpenAsync(doc);

        await sender.SendAsync(Presence(doc, new byte[limit]));
        Assert.Equal(limit, (await watcher.ReceiveAsync(ServerMessage.BodyOneofCase.Presence)).Presence.UserData.Length);

        await sender.SendAsync(Presence(doc, new byte[limit + 1]));
        return await ErrorAndStillOpenAsync(sender, sender.Welcome);

        static ClientMessage Presence(string doc, byte[] userData) => new()
        {
            Presence = new PresenceUpdate { DocId = doc, Selection = new Selection(), UserData = ByteString.CopyFrom(userData) },
        };
    }

    private static async Task<Outcome> DocumentSizeAsync(IReadOnlyDictionary<string, string> row)
    {
        const string doc = "limits/doc-size";
        Assert.Equal(ProtocolSpec.Quantity(row["Default"]), new DocumentOptions().MaxDocumentLength);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?> { [Setting(row)] = "50" });
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.OpenAsync(doc);
        await client.SendAsync(WireClient.Submit(doc, 1, 0, TextOp.Insert(0, new string('x', 50))));
        Assert.Equal(1, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);
        await client.SendAsync(WireClient.Submit(doc, 2, 1, TextOp.Insert(50, "!")));
        return await ErrorAndStillOpenAsync(client);
    }

    private static async Task<Outcome> SubscriptionsAsync(IReadOnlyDictionary<string, string> row)
    {
        Assert.Equal(ProtocolSpec.Quantity(row["Default"]), new DocumentOptions().MaxSubscriptionsPerConnection);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?> { [Setting(row)] = "3" });
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        for (int i = 0; i < 3; i++)
        {
            await client.OpenAsync("limits/subscriptions/" + i);
        }

        await client.SendAsync(new ClientMessage { RequestId = 9, Subscribe = new Subscribe { DocId = "limits/subscriptions/3", Snapshot = true } });
        return await ErrorAndStillOpenAsync(client);
    }

    private static async Task<Outcome> SubmitsInFlightAsync(IReadOnlyDictionary<string, string> row)
    {
        const string doc = "limits/pipelined";
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new DocumentOptions().MaxSubmitsInFlightPerConnection);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.OpenAsync(doc);

        // Three times the limit, pipelined without waiting: every one is sequenced and acknowledged, in order.
        int count = 3 * limit;
        for (int i = 1; i <= count; i++)
        {
            await client.SendAsync(WireClient.Submit(doc, (ulong)i, i - 1, TextOp.Insert(i - 1, "x")));
        }

        var errors = new List<ErrorCode>();
        for (int acked = 0; acked < count;)
        {
            Received received = await client.ReceiveAsync();
            Assert.Null(received.CloseCode);
            switch (received.Message!.BodyCase)
            {
                case ServerMessage.BodyOneofCase.Ack:
                    Assert.Equal(++acked, received.Message.Ack.Version);
                    break;
                case ServerMessage.BodyOneofCase.Error:
                    errors.Add(received.Message.Error.Code);
                    acked = count; // a refusal is the failure this row rules out; stop waiting for acks
                    break;
            }
        }

        await client.PingAsync();
        return new Outcome(errors, null);
    }

    private static async Task<Outcome> MessageRateAsync(IReadOnlyDictionary<string, string> row)
    {
        var defaults = new LimitsOptions();
        Assert.Equal(ProtocolSpec.Quantity(row["Default"]), defaults.MessagesPerSecond);
        Assert.Equal(int.Parse(Burst().Match(row["Default"]).Groups[1].Value, CultureInfo.InvariantCulture), defaults.MessageBurst);
        (List<ServerMessage> before, ushort close) = await WireClient.FloodPastTheMessageRateAsync(Setting(row));
        return new Outcome(Errors(before), close);
    }

    private static async Task<Outcome> DocumentIdAsync(IReadOnlyDictionary<string, string> row)
    {
        Assert.Equal(ProtocolSpec.Plain(DocumentId.Rule), ProtocolSpec.Plain(row["Default"]));
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        foreach (string valid in new[] { new string('a', DocumentId.MaxLength), "Org-1/notes_2.txt:v3", "a", "a.b/c" })
        {
            Assert.Equal(valid, (await client.OpenAsync(valid)).DocId);
        }

        string[] invalid = [new string('a', DocumentId.MaxLength + 1), "", "/a", ".a", "a/../b", "a b", "caf\u00e9", "a\u0000b", "tab\tid"];
        var errors = new List<ErrorCode>();
        foreach (string id in invalid)
        {
            await client.SendAsync(new ClientMessage { RequestId = 5, Subscribe = new Subscribe { DocId = id, Snapshot = true } });
            Received received = await client.ReceiveAsync();
            Assert.Null(received.CloseCode);
            errors.Add(received.Message!.Error.Code);
        }

        Assert.Equal(invalid.Length, errors.Count);
        await client.PingAsync();
        return new Outcome(errors, null);
    }

    private static async Task<Outcome> FirstMessageAsync(IReadOnlyDictionary<string, string> row)
    {
        Assert.Equal(ProtocolSpec.Quantity(row["Default"]), new TransportOptions().HandshakeTimeout.TotalSeconds);
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>
        {
            [Setting(row)] = "00:00:02",
            ["Transport:HeartbeatInterval"] = "00:00:00.050",
        });

        // Hello in time: the connection outlives the timeout.
        await using WireClient prompt = await WireClient.ConnectAsync(server.Port);
        await Task.Delay(3000);
        await prompt.PingAsync();

        await using WireClient silent = await WireClient.ConnectAsync(server.Port, hello: false);
        var before = new List<ServerMessage>();
        ushort close = await silent.ReceiveCloseAsync(before);
        return new Outcome(Errors(before), close);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>The setting a row names in its "Where announced" cell, e.g. <c>Documents:MaxDocumentLength</c>.</summary>
    private static string Setting(IReadOnlyDictionary<string, string> row) =>
        SettingName().Match(row["Where announced"]) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException($"The row '{row["Limit"]}' names no setting.");

    private static List<ErrorCode> Errors(IEnumerable<ServerMessage> messages) => [.. messages.Where(m => m.BodyCase == ServerMessage.BodyOneofCase.Error).Select(m => m.Error.Code)];

    /// <summary>The next message is an Error; the connection then still answers a Ping.</summary>
    private static Task<Outcome> RichAttributesAsync(IReadOnlyDictionary<string, string> row)
    {
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new DocumentOptions().RichTextMaxAttributes);
        return RichLimitAsync("limits/rich-attributes", count => RichOp.Insert(0, "x", Attributes(count)), limit);

        static AttributeMap Attributes(int count) =>
            AttributeMap.Create([.. Enumerable.Range(0, count).Select(i => KeyValuePair.Create($"a{i:D3}", RichValue.True))])!;
    }

    private static Task<Outcome> RichAttributeValueAsync(IReadOnlyDictionary<string, string> row)
    {
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new DocumentOptions().RichTextMaxAttributeValueBytes);
        return RichLimitAsync("limits/rich-value", bytes => RichOp.Insert(0, "x", AttributeMap.Of("link", ValueOfSize(bytes))), limit);
    }

    private static Task<Outcome> RichEmbedAsync(IReadOnlyDictionary<string, string> row)
    {
        int limit = (int)ProtocolSpec.Quantity(row["Default"]);
        Assert.Equal(limit, new DocumentOptions().RichTextMaxEmbedBytes);

        // The embed's size is its type's name ("image": 5 bytes) and its payload's encoding.
        return RichLimitAsync("limits/rich-embed", bytes => RichOp.Create(RichComponent.Insert(new RichEmbed("image", ValueOfSize(bytes - 5)))), limit);
    }

    /// <summary>A string value whose binary encoding (a varint header and the UTF-8 bytes) takes exactly <paramref name="bytes"/>.</summary>
    private static RichValue ValueOfSize(int bytes)
    {
        for (int length = bytes - 1; length > 0; length--)
        {
            RichValue value = new string('v', length);
            if (RichOpCodec.GetEncodedLength(value, long.MaxValue) == bytes)
            {
                return value;
            }
        }

        throw new InvalidOperationException($"No string value encodes to {bytes} bytes.");
    }

    /// <summary>On a rich-text document: the op <paramref name="opOfSize"/> makes at the limit is sequenced, one over it is refused.</summary>
    private static async Task<Outcome> RichLimitAsync(string doc, Func<int, RichOp> opOfSize, int limit)
    {
        await using SecureServer server = await SecureServer.StartAsync(new Dictionary<string, string?>());
        await using WireClient client = await WireClient.ConnectAsync(server.Port);
        await client.SendAsync(new ClientMessage { RequestId = 2, Subscribe = new Subscribe { DocId = doc, Snapshot = true, Type = "rich-text" } });
        Assert.Equal("rich-text", (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Snapshot)).Snapshot.Type);

        await client.SendAsync(RichSubmit(doc, 1, 0, opOfSize(limit)));
        Assert.Equal(1, (await client.ReceiveAsync(ServerMessage.BodyOneofCase.Ack)).Ack.Version);

        await client.SendAsync(RichSubmit(doc, 2, 1, opOfSize(limit + 1)));
        return await ErrorAndStillOpenAsync(client, client.Welcome);

        static ClientMessage RichSubmit(string doc, ulong seq, long baseVersion, RichOp op) =>
            new() { Submit = new Submit { DocId = doc, ClientSeq = seq, BaseVersion = baseVersion, Op = ByteString.CopyFrom(RichOpCodec.Encode(op)) } };
    }

    private static async Task<Outcome> ErrorAndStillOpenAsync(WireClient client, Welcome? welcome = null)
    {
        ServerMessage error = await client.ReceiveAsync(ServerMessage.BodyOneofCase.Error);
        await client.PingAsync();
        return new Outcome([error.Error.Code], null, welcome);
    }

    /// <summary>The longest ASCII insert whose encoding fits in <paramref name="limit"/> bytes.</summary>
    private static TextOp LargestInsertWithin(int limit)
    {
        int length = limit;
        while (TextOpCodec.GetEncodedLength(TextOp.Insert(0, new string('x', length))) > limit)
        {
            length--;
        }

        return TextOp.Insert(0, new string('x', length));
    }

    /// <summary>A ClientMessage carrying a Ping, padded to exactly <paramref name="totalBytes"/> with an unknown length-delimited field.</summary>
    private static byte[] PaddedPing(ulong nonce, int totalBytes)
    {
        byte[] ping = new ClientMessage { Ping = new Ping { Nonce = nonce } }.ToByteArray();
        const int unknownField = 1000;
        uint tag = WireFormat.MakeTag(unknownField, WireFormat.WireType.LengthDelimited);
        int fixedPart = ping.Length + CodedOutputStream.ComputeUInt32Size(tag);
        int padding = totalBytes - fixedPart - CodedOutputStream.ComputeLengthSize(totalBytes - fixedPart);
        while (fixedPart + CodedOutputStream.ComputeLengthSize(padding) + padding > totalBytes)
        {
            padding--;
        }

        using var stream = new MemoryStream();
        stream.Write(ping);
        var output = new CodedOutputStream(stream, leaveOpen: true);
        output.WriteTag(tag);
        output.WriteBytes(ByteString.CopyFrom(new byte[padding]));
        output.Flush();
        byte[] bytes = stream.ToArray();
        Assert.Equal(totalBytes, bytes.Length);
        return bytes;
    }

    [GeneratedRegex(@"`([A-Z][A-Za-z]+:[A-Za-z]+)`")]
    private static partial Regex SettingName();

    [GeneratedRegex(@"burst (\d+)")]
    private static partial Regex Burst();
}
