using Collab.Server;

// Collab server: single node with the embedded store by default (see README "Configuration").
try
{
    // The authentication mode is logged at start-up by the security layer (loudly when anonymous).
    await using var app = CollabServerHost.Build(args);
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (ex is Microsoft.Extensions.Options.OptionsValidationException or Collab.Server.Transport.TransportConfigurationException)
{
    Console.Error.WriteLine($"collab: invalid configuration: {ex.Message}");
    return 2;
}
