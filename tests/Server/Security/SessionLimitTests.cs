using Collab.Protocol.V1;
using Collab.Server.Security;
using Collab.Server.Tests.Security.Infrastructure;

namespace Collab.Server.Tests.Security;

/// <summary>
/// Abuse limits at the session: each refusal is an error first (RATE_LIMITED is retryable), a connection that
/// keeps going is closed with 4008, and a client that backs off or another user is never affected.
/// </summary>
public sealed class SessionLimitTests
{
    [Fact]
    public async Task AClientFloodingOpsIsRateLimitedThenClosed()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.OpsPerSecond = 10;
            l.OpsBurst = 10;
            l.ViolationsBeforeClose = 20;
        });
        double rejectedBefore = SecurityMetrics.Rejections(LimitKind.OpsConnection);
        double closesBefore = SecurityMetrics.Closes(LimitKind.OpsConnection);
        FakeConnection flooder = await harness.ConnectAsync(harness.Tokens.Create("flooder"));
        FakeConnection neighbour = await harness.ConnectAsync(harness.Tokens.Create("neighbour"));
        await flooder.SubscribeAndWaitAsync("flood/1");
        await neighbour.SubscribeAndWaitAsync("flood/1");

        int sent = 0;
        for (ulong seq = 1; seq <= 1000 && flooder.CloseCode is null; seq++)
        {
            await flooder.SubmitAsync("flood/1", seq, 0, SessionHarness.Insert(0, "x"), requestId: seq);
            sent++;
        }

        // 10 accepted, then 20 refusals are tolerated and the 21st closes: the flood stops there.
        Assert.Equal((ushort)CloseCode.RateLimited, flooder.CloseCode);
        Assert.Equal(10 + 20 + 1, sent);
        ServerMessage[] errors = [.. flooder.Received.Where(m => m.Error is not null)];
        Assert.Equal(21, errors.Length);
        Assert.All(errors, e =>
        {
            Assert.Equal(ErrorCode.RateLimited, e.Error.Code);
            Assert.True(e.Error.Retryable);
            Assert.NotEqual(0UL, e.Error.ClientSeq);
        });
        Assert.True(SecurityMetrics.Rejections(LimitKind.OpsConnection) - rejectedBefore >= 21);
        Assert.True(SecurityMetrics.Closes(LimitKind.OpsConnection) - closesBefore >= 1);

        // Another user (same address: every fake connection is 127.0.0.1) is untouched.
        for (ulong seq = 1; seq <= 10; seq++)
        {
            await neighbour.SubmitAsync("flood/1", seq, 0, SessionHarness.Insert(0, "n"));
        }

        await WaitForAsync(() => neighbour.Received.Count(m => m.Ack is not null) == 10);
        Assert.DoesNotContain(neighbour.Received, m => m.Error is not null);
        Assert.Null(neighbour.CloseCode);
    }

    [Fact]
    public async Task AClientThatBacksOffIsNeverClosed()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.OpsPerSecond = 10;
            l.OpsBurst = 5;
            l.ViolationsBeforeClose = 5; // forgives 0.5 refusals per second
        });
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("patient"));
        await client.SubscribeAndWaitAsync("patient/1");
        int acked = 0;
        int refusals = 0;
        for (ulong seq = 1; seq <= 60;)
        {
            await client.SubmitAsync("patient/1", seq, 0, SessionHarness.Insert(0, "p"), requestId: seq);
            ServerMessage answer = await client.NextAsync(m => (m.Ack is not null && m.Ack.ClientSeq == seq) || (m.Error is not null && m.Error.ClientSeq == seq));
            if (answer.Ack is not null)
            {
                acked++;
                seq++;
                continue;
            }

            // What the SDK does with a retryable error: wait, then resend the same seq. Bursting to the limit
            // and then waiting 2 s is one refusal per 2 s: within what the violation budget forgives.
            Assert.Equal(ErrorCode.RateLimited, answer.Error.Code);
            refusals++;
            harness.Time.Advance(TimeSpan.FromSeconds(2));
        }

        Assert.Equal(60, acked);
        Assert.True(refusals > 0);
        Assert.Null(client.CloseCode);
    }

    [Fact]
    public async Task TheUserBudgetSpansTheUsersConnections()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.UserOpsPerSecond = 10;
            l.UserOpsBurst = 10;
        });
        FakeConnection first = await harness.ConnectAsync(harness.Tokens.Create("multi"));
        FakeConnection second = await harness.ConnectAsync(harness.Tokens.Create("multi"));
        FakeConnection other = await harness.ConnectAsync(harness.Tokens.Create("other"));
        foreach (FakeConnection c in new[] { first, second, other })
        {
            await c.SubscribeAndWaitAsync("user/1");
        }

        for (ulong seq = 1; seq <= 6; seq++)
        {
            await first.SubmitAsync("user/1", seq, 0, SessionHarness.Insert(0, "a"));
            await second.SubmitAsync("user/1", seq, 0, SessionHarness.Insert(0, "b"));
            await other.SubmitAsync("user/1", seq, 0, SessionHarness.Insert(0, "c"));
        }

        ServerMessage[] userErrors = [.. first.Received.Concat(second.Received).Where(m => m.Error is not null)];
        Assert.Equal(2, userErrors.Length);
        Assert.All(userErrors, e => Assert.Contains("for this user", e.Error.Message, StringComparison.Ordinal));
        Assert.DoesNotContain(other.Received, m => m.Error is not null);
    }

    [Fact]
    public async Task PresenceOverItsRateIsDroppedWithOneErrorAndAFloodRunsIntoTheMessageRate()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.PresencePerSecond = 5;
            l.PresenceBurst = 5;
            l.MessagesPerSecond = 50;
            l.MessageBurst = 50;
            l.ViolationsBeforeClose = 10;
        });
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("mouse"));
        FakeConnection watcher = await harness.ConnectAsync(harness.Tokens.Create("watcher"));
        await client.SubscribeAndWaitAsync("presence/1");
        await watcher.SubscribeAndWaitAsync("presence/1");
        int sent = 0;
        for (int i = 0; i < 1000 && client.CloseCode is null; i++)
        {
            await client.SendAsync(new ClientMessage { Presence = new PresenceUpdate { DocId = "presence/1", Selection = new Selection { Anchor = 0, Head = 0 } } });
            sent++;
        }

        // Hello and Subscribe took 2 of the 50 messages: 48 presence updates pass the message rate, of which 5
        // are relayed and 43 dropped with a single error; then 11 message-rate refusals close the connection.
        Assert.Equal((ushort)CloseCode.RateLimited, client.CloseCode);
        Assert.Equal(48 + 11, sent);
        ServerMessage presenceError = Assert.Single(client.Received, m => m.Error is not null && m.Error.DocId == "presence/1");
        Assert.Equal(ErrorCode.RateLimited, presenceError.Error.Code);
        Assert.Equal(11, client.Received.Count(m => m.Error is not null && m.Error.DocId.Length == 0 && m.Error.Code == ErrorCode.RateLimited));
        await WaitForAsync(() => watcher.Received.Count(m => m.Presence is not null && m.Presence.ClientId == client.ClientId && m.Presence.Selection is not null) == 5);
    }

    [Fact]
    public async Task AnEditorSendingPresenceTooOftenIsThrottledButNeverClosed()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.PresencePerSecond = 20;
            l.PresenceBurst = 20;
            l.ViolationsBeforeClose = 5;
        });
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("chatty"));
        await client.SubscribeAndWaitAsync("presence/2");

        // 60 selection changes a second for 10 seconds: three times the presence rate, well within the message rate.
        for (int second = 0; second < 10; second++)
        {
            for (int i = 0; i < 60; i++)
            {
                await client.SendAsync(new ClientMessage { Presence = new PresenceUpdate { DocId = "presence/2", Selection = new Selection { Anchor = 0, Head = 0 } } });
                harness.Time.Advance(TimeSpan.FromMilliseconds(1000.0 / 60));
            }
        }

        Assert.Null(client.CloseCode);
        Assert.Contains(client.Received, m => m.Error is not null && m.Error.Code == ErrorCode.RateLimited);
    }

    [Fact]
    public async Task AClientSubscribingToTenThousandDocumentsIsCappedThenClosed()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(
            limits: l => l.ViolationsBeforeClose = 50,
            documents: d => d.MaxSubscriptionsPerConnection = 20);
        double before = SecurityMetrics.Rejections(LimitKind.Subscriptions);
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("hoarder"));
        int sent = 0;
        for (int i = 0; i < 10_000 && client.CloseCode is null; i++)
        {
            await client.SubscribeAsync($"many/{i}", requestId: (ulong)i + 100);
            sent++;
        }

        Assert.Equal((ushort)CloseCode.RateLimited, client.CloseCode);
        Assert.Equal(20 + 50 + 1, sent);
        Assert.Equal(20, client.Received.Count(m => m.Snapshot is not null));
        ServerMessage[] errors = [.. client.Received.Where(m => m.Error is not null)];
        Assert.Equal(51, errors.Length);
        Assert.All(errors, e => Assert.Equal(ErrorCode.TooManySubscriptions, e.Error.Code));
        Assert.True(harness.Documents.OpenCount <= 20);
        Assert.True(SecurityMetrics.Rejections(LimitKind.Subscriptions) - before >= 51);
    }

    [Fact]
    public async Task TheMessageRateCoversEveryKindOfMessage()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(limits: l =>
        {
            l.MessagesPerSecond = 5;
            l.MessageBurst = 5;
        });

        // Hello took one message of the burst.
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("pinger"));
        for (ulong i = 1; i <= 6; i++)
        {
            await client.SendAsync(new ClientMessage { RequestId = i, Ping = new Ping { Nonce = i } });
        }

        Assert.Equal(4, client.Received.Count(m => m.Pong is not null));
        ServerMessage[] errors = [.. client.Received.Where(m => m.Error is not null)];
        Assert.Equal(new ulong[] { 5, 6 }, errors.Select(e => e.RequestId));
        Assert.All(errors, e => Assert.Equal(ErrorCode.RateLimited, e.Error.Code));

        // The budget refills with time.
        harness.Time.Advance(TimeSpan.FromSeconds(1));
        await client.SendAsync(new ClientMessage { RequestId = 7, Ping = new Ping { Nonce = 7 } });
        Assert.Contains(client.Received, m => m.Pong is not null && m.Pong.Nonce == 7);
    }

    [Fact]
    public async Task OversizedOpsAndDocumentsAreRefusedAndCounted()
    {
        await using SessionHarness harness = await SessionHarness.StartAsync(documents: d =>
        {
            d.MaxOpBytes = 64;
            d.MaxDocumentLength = 10;
        });
        double opSize = SecurityMetrics.Rejections(LimitKind.OpSize);
        double docSize = SecurityMetrics.Rejections(LimitKind.DocSize);
        FakeConnection client = await harness.ConnectAsync(harness.Tokens.Create("big"));
        await client.SubscribeAndWaitAsync("size/1");

        await client.SubmitAsync("size/1", 1, 0, SessionHarness.Insert(0, new string('a', 200)));
        Assert.Equal(ErrorCode.OpTooLarge, (await client.NextErrorAsync()).Error.Code);
        await client.SubmitAsync("size/1", 2, 0, SessionHarness.Insert(0, new string('a', 11)));
        Assert.Equal(ErrorCode.DocTooLarge, (await client.NextErrorAsync()).Error.Code);
        await client.SubmitAsync("size/1", 3, 0, SessionHarness.Insert(0, new string('a', 10)));
        Assert.Equal(1, (await client.NextAsync(m => m.Ack is not null)).Ack.Version);

        Assert.True(SecurityMetrics.Rejections(LimitKind.OpSize) - opSize >= 1);
        Assert.True(SecurityMetrics.Rejections(LimitKind.DocSize) - docSize >= 1);
    }

    [Fact]
    public async Task ConnectionAttemptsAreLimitedPerAddressAndRefillOverTime()
    {
        var time = new ManualTimeProvider();
        var limiter = new ConnectionAttemptLimiter(new LimitsOptions { ConnectionAttemptsPerIpPerMinute = 3 }, time);
        var a = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("203.0.113.7"), 1000);
        var b = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("203.0.113.8"), 1000);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(limiter.TryAcquire(a, out _));
        }

        Assert.False(limiter.TryAcquire(a, out int retryAfter));
        Assert.Equal(20, retryAfter);
        Assert.True(limiter.TryAcquire(b, out _)); // other addresses have their own budget

        time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(limiter.TryAcquire(a, out _));
        Assert.False(limiter.TryAcquire(a, out _));

        // Idle addresses are forgotten by the sweep (a full bucket decides like a missing one).
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(0, limiter.TrackedAddresses);
    }

    [Fact]
    public void LoopbackClientsAreExemptUnlessConfigured()
    {
        var loopback = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 1);
        var exempt = new ConnectionAttemptLimiter(new LimitsOptions { ConnectionAttemptsPerIpPerMinute = 1 }, new ManualTimeProvider());
        Assert.True(exempt.TryAcquire(loopback, out _));
        Assert.True(exempt.TryAcquire(loopback, out _));
        Assert.True(exempt.TryAcquire(new System.Net.IPEndPoint(System.Net.IPAddress.IPv6Loopback, 1), out _));

        // All of 127.0.0.0/8, also as a dual-stack listener reports IPv4 clients (IPv4-mapped IPv6).
        foreach (string address in new[] { "127.0.0.2", "127.255.0.9", "::ffff:127.0.0.1", "::ffff:127.0.0.2", "::ffff:127.1.2.3" })
        {
            var endPoint = new System.Net.IPEndPoint(System.Net.IPAddress.Parse(address), 1);
            Assert.True(exempt.TryAcquire(endPoint, out _), address);
            Assert.True(exempt.TryAcquire(endPoint, out _), address);
        }

        // A mapped address outside 127/8 is an ordinary client.
        var mapped = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("::ffff:10.0.0.1"), 1);
        Assert.True(exempt.TryAcquire(mapped, out _));
        Assert.False(exempt.TryAcquire(mapped, out _));

        var counted = new ConnectionAttemptLimiter(new LimitsOptions { ConnectionAttemptsPerIpPerMinute = 1, ExemptLoopback = false }, new ManualTimeProvider());
        Assert.True(counted.TryAcquire(loopback, out _));
        Assert.False(counted.TryAcquire(loopback, out _));
    }

    [Fact]
    public void Ipv6AddressesCountPerSlash64AndMappedIpv4AsIpv4()
    {
        UInt128 one = ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("2001:db8:1:2::1"));
        UInt128 sameNet = ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("2001:db8:1:2:ffff::9"));
        UInt128 otherNet = ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("2001:db8:1:3::1"));
        Assert.Equal(one, sameNet);
        Assert.NotEqual(one, otherNet);
        Assert.Equal(
            ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("192.0.2.1")),
            ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("::ffff:192.0.2.1")));
        Assert.NotEqual(
            ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("192.0.2.1")),
            ConnectionAttemptLimiter.KeyOf(System.Net.IPAddress.Parse("192.0.2.2")));
    }

    [Fact]
    public void TheAddressTableFailsOpenWhenFull()
    {
        var limiter = new ConnectionAttemptLimiter(new LimitsOptions { ConnectionAttemptsPerIpPerMinute = 1, MaxTrackedAddresses = 2 }, new ManualTimeProvider());
        var first = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("198.51.100.1"), 1);
        Assert.True(limiter.TryAcquire(first, out _));
        Assert.True(limiter.TryAcquire(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("198.51.100.2"), 1), out _));
        Assert.False(limiter.TryAcquire(first, out _));

        // A third address is not tracked (so not limited) rather than refused.
        var third = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("198.51.100.3"), 1);
        Assert.True(limiter.TryAcquire(third, out _));
        Assert.True(limiter.TryAcquire(third, out _));
        Assert.Equal(2, limiter.TrackedAddresses);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(5, cts.Token);
        }
    }
}
