using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Collab.Server.Tests.Security.Infrastructure;

/// <summary>An <see cref="ILogger"/> that keeps every entry (level, event id, formatted message), for tests that check what was logged.</summary>
public sealed class RecordingLogger : ILogger
{
    public ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Enqueue((logLevel, eventId, formatter(state, exception)));
}
