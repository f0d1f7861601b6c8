using System.Collections.Concurrent;
using Collab.Integration.Tests.Infrastructure;
using Collab.Server.Sessions;
using Collab.Server.Storage;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 13 §1 end to end: SDK clients over real sockets keep editing while faults are injected into their documents'
/// delivery (the <see cref="DocumentRegistry.FaultInjection"/> seam, at fixed versions: not a timing accident). Every
/// fault is counted, each document is reloaded from the op log and its subscribers resumed on their open connections:
/// no client reconnects, every client converges, and the op log holds every acknowledged op exactly once.
/// </summary>
public sealed class DocumentFaultRecoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Clients_editing_through_injected_document_faults_converge_without_reconnecting_and_lose_nothing_acknowledged()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using InProcessServer server = await InProcessServer.StartAsync();
        await using var run = new EditingRun(() => server.WebSocketUri, documents: 3, clientsPerDocument: 4, output);
        await run.ConnectAsync(cts.Token);
        int connectsBefore = run.Connects;
        DocumentRegistry registry = server.Services.GetRequiredService<DocumentRegistry>();
        double faultsBefore = SessionMetrics.DocumentFaults.WithLabels("sequencer").Value;

        // Each document fails when its delivery reaches versions 20, 60 and 120 (each at most once: the reload passes them).
        var injected = new ConcurrentDictionary<(string, long), bool>();
        registry.FaultInjection = (docId, version) =>
        {
            foreach (long at in (long[])[20, 60, 120])
            {
                if (version >= at && injected.TryAdd((docId, at), true))
                {
                    throw new InvalidOperationException($"injected fault at version {version}");
                }
            }
        };

        await run.EditAsync(TimeSpan.FromSeconds(6), dropEvery: null, cts.Token);
        registry.FaultInjection = null;
        await run.SettleAsync(TimeSpan.FromSeconds(60));
        var converged = await run.AssertConvergedAsync(cts.Token);
        output.WriteLine($"{injected.Count} faults injected; versions reached: {string.Join(", ", converged.Select(c => $"{c.Key} v{c.Value.Version}"))}");

        Assert.True(injected.Count >= run.DocIds.Count, $"only {injected.Count} faults were injected");
        Assert.Equal(injected.Count, SessionMetrics.DocumentFaults.WithLabels("sequencer").Value - faultsBefore);
        Assert.Equal(connectsBefore, run.Connects); // resumed in place: nobody had to reconnect
        await server.StopAsync();
        run.AssertOpLog(docId => DurabilityFaultTests.ReadLog(new StorageOptions { DataDirectory = server.DataDirectory }, docId), converged);
    }
}
