using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Collab.Integration.Tests.Infrastructure;

/// <summary>
/// Records every log entry of every category, for tests that assert what a component logged (the server's own events by
/// id, or a library's, e.g. Npgsql's transaction events by category and name). Thread-safe.
/// </summary>
public sealed class RecordingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<LogEntry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new CategoryLogger(this, categoryName);

    public void Clear() => Entries.Clear();

    public void Dispose()
    {
    }

    public readonly record struct LogEntry(string Category, LogLevel Level, EventId Id, string Message);

    private sealed class CategoryLogger(RecordingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider.Entries.Enqueue(new LogEntry(category, logLevel, eventId, formatter(state, exception)));
    }
}
