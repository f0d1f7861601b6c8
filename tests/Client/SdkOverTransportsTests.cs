namespace Collab.Client.Tests;

// The SDK's whole scripted-server suite again over real loopback WebSockets, once per transport: every reconnect,
// close code, redirect, keep-alive and document behaviour holds whichever transport carries it.

public sealed class ClientConnectionTestsOverPipelines() : ClientConnectionTests(FakeWire.Pipelines);

public sealed class ClientConnectionTestsOverClientWebSocket() : ClientConnectionTests(FakeWire.ClientWebSocket);

public sealed class ClientDocumentTestsOverPipelines() : ClientDocumentTests(FakeWire.Pipelines);

public sealed class ClientDocumentTestsOverClientWebSocket() : ClientDocumentTests(FakeWire.ClientWebSocket);
