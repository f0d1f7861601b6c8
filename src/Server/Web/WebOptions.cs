namespace Collab.Server.Web;

/// <summary>The browser page served on the public port (configuration section <c>Web</c>).</summary>
public sealed class WebOptions
{
    public const string Section = "Web";

    /// <summary>
    /// Serve the page (<c>/</c>, <c>/d/{id}</c> and its static files). Unset (default): on in the zero-configuration
    /// single-node anonymous mode, off when <c>Auth:Mode=Jwt</c> or in a cluster, where the page is usually served by the
    /// application that embeds the editor.
    /// </summary>
    public bool? Enabled { get; set; }

    /// <summary>The directory of the built page (index.html and assets/). Default: <c>wwwroot</c> next to the server's binaries.</summary>
    public string? RootPath { get; set; }

    /// <summary>Whether the page is served, given the authentication mode and cluster mode.</summary>
    public bool IsEnabled(bool jwt, bool cluster) => Enabled ?? (!jwt && !cluster);

    /// <summary>The page's directory, absolute.</summary>
    public string ResolvedRootPath => Path.GetFullPath(RootPath ?? Path.Combine(AppContext.BaseDirectory, "wwwroot"));
}
