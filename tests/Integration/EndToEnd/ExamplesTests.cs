using Collab.Client;
using Collab.Engine.RichText;
using Collab.Engine.Text;
using Collab.Integration.Tests.Infrastructure;

namespace Collab.Integration.Tests.EndToEnd;

/// <summary>
/// The README's SDK examples (examples/QuickStart and examples/ExportJob, which the README quotes verbatim) run as a
/// newcomer runs them, against a real server: they compile, connect, and do what the README says.
/// </summary>
public sealed class ExamplesTests
{
    [Fact]
    public async Task The_quick_start_runs_against_a_real_server()
    {
        await using InProcessServer server = await InProcessServer.StartAsync();
        (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync(
            [server.WebSocketUri.ToString()],
            timeout: TimeSpan.FromSeconds(60),
            assembly: ServerProcess.BuildOutput("examples/QuickStart", "Collab.Examples.QuickStart"));

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Contains("bob sees \"Hello, \" (version 1)", stdout, StringComparison.Ordinal);
        Assert.EndsWith("alice has \"Hello, \", bob has \"Hello, \"", stdout.TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_export_job_writes_html_and_text_and_a_second_run_fetches_only_what_changed()
    {
        await using InProcessServer server = await InProcessServer.StartAsync();
        using var api = new CollabHttpClient(server.HttpUri);
        await api.CreateRichDocumentAsync("reports/q1", RichDocument.FromOp(RichOp.Insert(0, "Q1 <b>", AttributeMap.Of("bold", RichValue.True))));
        await api.CreateTextDocumentAsync("reports/notes", "plain notes");
        await api.CreateTextDocumentAsync("other/skip", "not exported");
        string output = Directory.CreateTempSubdirectory("collab-export-").FullName;
        try
        {
            string assembly = ServerProcess.BuildOutput("examples/ExportJob", "Collab.Examples.ExportJob");
            (int exitCode, string stdout, string stderr) = await ServerProcess.RunToExitAsync([server.HttpUri.ToString(), output, "reports/"], timeout: TimeSpan.FromSeconds(60), assembly: assembly);
            Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
            string html = await File.ReadAllTextAsync(Path.Combine(output, "reports%2Fq1.html"));
            Assert.Equal(await api.ExportHtmlAsync("reports/q1"), html);
            Assert.Contains("<strong>Q1 &lt;b&gt;</strong>", html, StringComparison.Ordinal);
            Assert.Equal("plain notes", await File.ReadAllTextAsync(Path.Combine(output, "reports%2Fnotes.txt")));
            Assert.False(File.Exists(Path.Combine(output, "other%2Fskip.txt")));

            // Second run after one edit: the unchanged document is a 304, the changed one is exported again.
            await api.SubmitTextOpAsync("reports/notes", 1, TextOp.Insert(0, "new "));
            (exitCode, stdout, stderr) = await ServerProcess.RunToExitAsync([server.HttpUri.ToString(), output, "reports/"], timeout: TimeSpan.FromSeconds(60), assembly: assembly);
            Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
            Assert.Contains("reports/q1: unchanged", stdout, StringComparison.Ordinal);
            Assert.Contains("reports/notes: version 2", stdout, StringComparison.Ordinal);
            Assert.Equal("new plain notes", await File.ReadAllTextAsync(Path.Combine(output, "reports%2Fnotes.txt")));
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }
}
