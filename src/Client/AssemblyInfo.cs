using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Collab.Server.Tests")]
[assembly: InternalsVisibleTo("Collab.Client.Tests")]
[assembly: InternalsVisibleTo("Collab.Integration.Tests")]
[assembly: InternalsVisibleTo("Collab.LoadTest")]
[assembly: InternalsVisibleTo("Collab.Bench")]
