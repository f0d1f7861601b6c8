using Collab.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Collab server: single node with the embedded store by default (see README "Configuration").
try
{
    await using var app = CollabServerHost.Build(args);
    app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Collab.Server")
        .LogWarning("Authentication is disabled: anyone who can reach this port can read and write every document.");
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (ex is Microsoft.Extensions.Options.OptionsValidationException or Collab.Server.Transport.TransportConfigurationException)
{
    Console.Error.WriteLine($"collab: invalid configuration: {ex.Message}");
    return 2;
}
