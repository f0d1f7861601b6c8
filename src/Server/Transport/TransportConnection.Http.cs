using System.Buffers;
using System.IO.Pipelines;

namespace Collab.Server.Transport;

/// <summary>The HTTP phase: the routing peek, the upgrade request, the handshake decision and the 101 or the error response.</summary>
internal sealed partial class TransportConnection
{
    /// <summary>
    /// Peeks at the request line. A request for the WebSocket path is read whole (and consumed) and returned; for any
    /// other path nothing is consumed, <see cref="_handOff"/> is set and null returned, so the HTTP pipeline reads the
    /// request from the start. Null without hand-off: the connection should end (peer gone, shutdown, bad request).
    /// </summary>
    private async ValueTask<HttpRequestHead?> ReadWebSocketRequestAsync()
    {
        bool ours = false;
        while (true)
        {
            ReadResult result = await _input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                if (IsAborted || _shutdownRequested)
                {
                    return null;
                }

                continue;
            }

            ReadOnlySequence<byte> buffer = result.Buffer;
            if (!ours)
            {
                RequestRoute route = HttpRequestParser.Route(buffer, _options.WebSocketPath, _options.MaxRequestHeaderBytes);
                if (route == RequestRoute.Pipeline)
                {
                    // Consumed and examined nothing: the pipeline's first read returns these bytes at once.
                    _input.AdvanceTo(buffer.Start);
                    _handOff = true;
                    return null;
                }

                ours = route == RequestRoute.WebSocket;
            }

            if (ours)
            {
                HttpParseStatus status = HttpRequestParser.TryParse(buffer, _options.MaxRequestHeaderBytes, out HttpRequestHead? request, out SequencePosition consumed);
                if (status == HttpParseStatus.Complete)
                {
                    _input.AdvanceTo(consumed);
                    return request;
                }

                if (status != HttpParseStatus.Incomplete)
                {
                    _input.AdvanceTo(buffer.End);
                    bool tooLarge = status == HttpParseStatus.HeadersTooLarge;
                    TransportMetrics.HandshakeFailed(tooLarge ? HandshakeFailure.HeadersTooLarge : HandshakeFailure.BadRequest).Inc();
                    await WriteErrorAsync(tooLarge ? 431 : 400, tooLarge ? "request head too large" : "malformed request").ConfigureAwait(false);
                    return null;
                }
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null; // peer went away before a whole request line or head arrived
            }
        }
    }

    private async ValueTask<bool> HandleUpgradeAsync(HttpRequestHead request)
    {
        if (!request.IsGet)
        {
            return await RejectAsync(HandshakeFailure.MethodNotAllowed, 405, "the WebSocket endpoint only accepts GET", "Allow: GET\r\n").ConfigureAwait(false);
        }

        if (!request.IsHttp11 || request.Host is null || request.HasBody)
        {
            return await RejectAsync(HandshakeFailure.BadRequest, 400, "a WebSocket upgrade needs HTTP/1.1, a Host header and no body").ConfigureAwait(false);
        }

        if (!HttpTokens.ContainsToken(request.Upgrade, "websocket"))
        {
            return await RejectAsync(HandshakeFailure.UpgradeRequired, 426, "this endpoint requires a WebSocket upgrade", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n").ConfigureAwait(false);
        }

        if (!HttpTokens.ContainsToken(request.Connection, "upgrade"))
        {
            return await RejectAsync(HandshakeFailure.BadRequest, 400, "Connection header must contain Upgrade").ConfigureAwait(false);
        }

        if (request.SecWebSocketVersion != "13")
        {
            // RFC 6455 section 4.4: answer 426 listing the versions this server speaks.
            return await RejectAsync(HandshakeFailure.UnsupportedVersion, 426, "unsupported WebSocket version", "Sec-WebSocket-Version: 13\r\n").ConfigureAwait(false);
        }

        if (request.SecWebSocketKeyCount != 1 || !IsValidKey(request.SecWebSocketKey))
        {
            return await RejectAsync(HandshakeFailure.BadRequest, 400, "Sec-WebSocket-Key must be 16 bytes in base64").ConfigureAwait(false);
        }

        if (request.Origin is not null && _services.AllowedOrigins.Count > 0 && !_services.AllowedOrigins.Contains(request.Origin))
        {
            return await RejectAsync(HandshakeFailure.OriginForbidden, 403, "origin not allowed").ConfigureAwait(false);
        }

        if (!_services.Registry.TryAcquireWebSocket(out ConnectionRejection rejection))
        {
            TransportMetrics.Rejected(rejection).Inc();
            await WriteErrorAsync(503, rejection == ConnectionRejection.ShuttingDown ? "server shutting down" : "too many connections", "Retry-After: 1\r\n").ConfigureAwait(false);
            return false;
        }

        _holdsSlot = true;
        IReadOnlyList<string> offered = HttpTokens.SplitList(request.SecWebSocketProtocol);
        var handshake = new HandshakeRequest
        {
            Path = request.Path,
            Query = request.Query,
            Origin = request.Origin,
            Authorization = request.Authorization,
            Cookie = request.Cookie,
            OriginAllowListed = request.Origin is not null && _services.AllowedOrigins.Contains(request.Origin),
            SubProtocols = offered,
            RemoteEndPoint = RemoteEndPoint,
        };

        HandshakeDecision decision;
        try
        {
            decision = await _services.Application.OnHandshakeAsync(handshake, Closed).ConfigureAwait(false);
        }
        catch (Exception ex) when (!IsAborted)
        {
            TransportLog.ApplicationFailure(_services.Logger, Id, ex);
            return await RejectAsync(HandshakeFailure.ApplicationRejected, 500, "handshake failed").ConfigureAwait(false);
        }

        if (!decision.Accepted)
        {
            int status = decision.StatusCode is >= 400 and <= 599 ? decision.StatusCode : 500;
            if (!TryFormatRejectionHeaders(decision, out string? headers))
            {
                TransportLog.BadRejectionHeaders(_services.Logger, Id);
                return await RejectAsync(HandshakeFailure.ApplicationRejected, 500, "handshake failed").ConfigureAwait(false);
            }

            return await RejectAsync(HandshakeFailure.ApplicationRejected, status, decision.Reason ?? HttpResponseWriter.ReasonPhrase(status), headers).ConfigureAwait(false);
        }

        if (decision.SubProtocol is not null && !offered.Contains(decision.SubProtocol, StringComparer.Ordinal))
        {
            TransportLog.BadSubProtocol(_services.Logger, Id, decision.SubProtocol);
            return await RejectAsync(HandshakeFailure.ApplicationRejected, 500, "handshake failed").ConfigureAwait(false);
        }

        if (_services.Registry.IsShuttingDown)
        {
            TransportMetrics.Rejected(ConnectionRejection.ShuttingDown).Inc();
            await WriteErrorAsync(503, "server shutting down", "Retry-After: 1\r\n").ConfigureAwait(false);
            return false;
        }

        if (_upgradeResponse is { } pipeline)
        {
            // Through the HTTP pipeline: it writes the 101 and hands over the connection's stream.
            IDuplexPipe? upgraded = await pipeline.AcceptAsync(request.SecWebSocketKey!, decision.SubProtocol).ConfigureAwait(false);
            if (upgraded is null)
            {
                return false;
            }

            _input = upgraded.Input;
            _output = upgraded.Output;
        }
        else
        {
            // Straight to the socket where output goes there from now on (TransportConnection.Send.cs); else the pipe.
            if (WriteSwitchingProtocols(request.SecWebSocketKey!, decision.SubProtocol))
            {
                FlushResult flush = await _output.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    return false;
                }
            }
        }

        TransportMetrics.ConnectionsOpen.Inc();
        TransportMetrics.ConnectionsTotal.Inc();
        TransportLog.ConnectionOpened(_services.Logger, Id, RemoteEndPoint);
        long now = Environment.TickCount64;
        Volatile.Write(ref _lastReceive, now);
        _lastPing = now;
        lock (_sync)
        {
            _phase = PhaseOpen;
            _awaitingFirstMessage = decision.RequireFirstMessage;
            _deadline = decision.RequireFirstMessage ? now + _services.HandshakeTimeoutMs : long.MaxValue;
        }

        LeaveHandshakePhase();

        if (_shutdownRequested)
        {
            // Shutdown began while the 101 was in flight: this connection missed the broadcast 1001.
            StartClose(WebSocketCloseCodes.GoingAway, "server shutting down", ConnectionEndReason.ServerShutdown, _services.CloseTimeoutMs, dropQueued: false);
        }

        try
        {
            _session = _services.Application.OnOpen(this, decision.State);
        }
        catch (Exception ex)
        {
            TransportLog.ApplicationFailure(_services.Logger, Id, ex);
            StartClose(WebSocketCloseCodes.InternalError, "internal error", ConnectionEndReason.InternalError, _services.CloseTimeoutMs, dropQueued: true);
        }

        return true;
    }

    private async ValueTask<bool> RejectAsync(HandshakeFailure failure, int statusCode, string message, string? extraHeaders = null)
    {
        TransportMetrics.HandshakeFailed(failure).Inc();
        if (_holdsSlot)
        {
            _holdsSlot = false;
            _services.Registry.ReleaseWebSocket();
        }

        RecordEnd(ConnectionEndReason.HandshakeRejected);
        await WriteErrorAsync(statusCode, message, extraHeaders).ConfigureAwait(false);
        return false;
    }

    private async ValueTask WriteErrorAsync(int statusCode, string message, string? extraHeaders = null)
    {
        if (_upgradeResponse is { } pipeline)
        {
            await pipeline.RejectAsync(statusCode, message, extraHeaders).ConfigureAwait(false);
            return;
        }

        HttpResponseWriter.WriteError(_output, statusCode, message, extraHeaders);
        await _output.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Retry-After and WWW-Authenticate of an application rejection; false when the challenge could inject header lines.</summary>
    private static bool TryFormatRejectionHeaders(in HandshakeDecision decision, out string? headers)
    {
        headers = null;
        if (decision.Challenge is { } challenge)
        {
            foreach (char c in challenge)
            {
                if (c is < ' ' or > '~')
                {
                    return false;
                }
            }

            headers = "WWW-Authenticate: " + challenge + "\r\n";
        }

        if (decision.RetryAfterSeconds > 0)
        {
            headers += "Retry-After: " + decision.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\r\n";
        }

        return true;
    }

    /// <summary>Gives the pending slot back (once) and drops the reference, so an open WebSocket does not keep it alive.</summary>
    private void LeaveHandshakePhase() => Interlocked.Exchange(ref _pendingSlot, null)?.Release();

    private static bool IsValidKey(string? key)
    {
        Span<byte> decoded = stackalloc byte[18];
        return key is { Length: 24 } && Convert.TryFromBase64String(key, decoded, out int written) && written == 16;
    }
}
