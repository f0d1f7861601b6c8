using System.Reflection;
using Collab.Testing;
using Microsoft.Extensions.Logging;

namespace Collab.Server.Tests.Hosting;

/// <summary>
/// Every source-generated log message of the server has a stable event id, unique, inside its layer's range (the ranges
/// docs/OPERATIONS.md lists under "Logs"), so a dashboard or alert keyed on an id keeps meaning the same thing.
/// </summary>
public sealed class LogEventIdTests
{
    /// <summary>Namespace → event id range, as docs/OPERATIONS.md documents them.</summary>
    private static readonly (string Namespace, int First, int Last)[] s_ranges =
    [
        ("Collab.Server", 1000, 1099),
        ("Collab.Server.Storage", 1100, 1199),
        ("Collab.Server.Api", 1300, 1399),
        ("Collab.Server.Web", 1400, 1499),
        ("Collab.Server.Sessions", 2000, 2099),
        ("Collab.Server.Cluster", 3000, 3199),
        ("Collab.Server.Security", 4000, 4099),
        ("Collab.Server.Transport", 5000, 5099),
        ("Collab.Server.Hosting", 5100, 5199),
    ];

    private static IEnumerable<(MethodInfo Method, LoggerMessageAttribute Message)> Messages() =>
        from type in typeof(CollabServerHost).Assembly.GetTypes()
        from method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly)
        let message = method.GetCustomAttribute<LoggerMessageAttribute>()
        where message is not null
        select (method, message);

    [Fact]
    public void Every_log_message_has_a_unique_event_id_in_its_layers_range()
    {
        var seen = new Dictionary<int, string>();
        int count = 0;
        foreach ((MethodInfo method, LoggerMessageAttribute message) in Messages())
        {
            count++;
            string name = method.DeclaringType!.FullName + "." + method.Name;
            string ns = method.DeclaringType!.Namespace!;
            (string Namespace, int First, int Last) range = Assert.Single(s_ranges, r => r.Namespace == ns);
            Assert.True(message.EventId >= range.First && message.EventId <= range.Last, $"{name}: event id {message.EventId} is outside {ns}'s range {range.First}-{range.Last}.");
            Assert.True(seen.TryAdd(message.EventId, name), $"{name}: event id {message.EventId} is also {seen.GetValueOrDefault(message.EventId)}.");
        }

        Assert.True(count > 50, $"only {count} log messages found: the scan is broken");
    }

    [Fact]
    public void Operations_guide_lists_every_range()
    {
        string guide = RepositoryFiles.ReadAllText("docs/OPERATIONS.md");
        foreach ((string ns, int first, int last) in s_ranges)
        {
            Assert.Contains($"| {first}–{last} | `{ns}", guide, StringComparison.Ordinal);
        }
    }
}
