using System.Text;
using System.Text.RegularExpressions;
using Collab.LoadTest;
using Collab.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;

namespace Collab.Server.Tests.Docs;

/// <summary>
/// Every code block of README.md is checked: a C# block is an example file of the solution, quoted exactly (so it
/// compiles with every build and ExamplesTests runs it); a shell block names only scripts, projects, subcommands,
/// flags and settings that exist (each server command line and set of environment settings goes through the server's
/// real configuration checks, each load-test command line through the load tool's parser). A block in any other
/// language fails until it gets a check here.
/// </summary>
public sealed partial class ReadmeTests
{
    private static readonly Lazy<IReadOnlyList<CodeBlock>> s_blocks = new(() => CodeBlocks(RepositoryFiles.ReadAllText("README.md")));

    /// <summary>One fenced block and the paragraph before it (where the README says what the block is).</summary>
    public sealed record CodeBlock(string Language, string Code, string Intro, int Line);

    [Fact]
    public void Every_block_is_in_a_language_that_is_checked()
    {
        Assert.NotEmpty(s_blocks.Value);
        Assert.All(s_blocks.Value, b => Assert.True(b.Language is "csharp" or "sh" or "mermaid" or "ts", $"README.md line {b.Line}: a '{b.Language}' block has no check in {nameof(ReadmeTests)}."));
    }

    [Fact]
    public void Every_csharp_block_is_an_example_file_of_the_solution_quoted_exactly()
    {
        string solution = RepositoryFiles.ReadAllText("Collab.sln");
        CodeBlock[] csharp = [.. s_blocks.Value.Where(b => b.Language == "csharp")];
        Assert.NotEmpty(csharp);
        foreach (CodeBlock block in csharp)
        {
            Match link = ExampleLink().Match(block.Intro);
            Assert.True(link.Success, $"README.md line {block.Line}: the paragraph before a C# block must link the examples/ file it quotes.");
            string file = link.Groups[1].Value;
            Assert.Equal(Normalize(RepositoryFiles.ReadAllText(file)), Normalize(block.Code));

            // Its project is in the solution, so every build compiles the snippet.
            string project = Directory.GetFiles(Path.GetDirectoryName(RepositoryFiles.PathOf(file))!, "*.csproj").Single();
            string relative = Path.GetRelativePath(RepositoryFiles.Root, project).Replace('/', '\\');
            Assert.Contains(relative, solution, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Every_ts_block_is_a_browser_sdk_example_quoted_exactly()
    {
        // The examples run in the browser SDK's tests (readme.test.ts binds textarea.ts to two replicas, integration-rich.test.ts runs rich.ts against the server).
        CodeBlock[] ts = [.. s_blocks.Value.Where(b => b.Language == "ts")];
        Assert.NotEmpty(ts);
        foreach (CodeBlock block in ts)
        {
            Match file = TsExampleFile().Match(block.Intro);
            Assert.True(file.Success, $"README.md line {block.Line}: the paragraph before a TypeScript block must name the web/client/examples file it quotes.");
            Assert.Equal(Normalize(RepositoryFiles.ReadAllText(file.Groups[1].Value)), Normalize(block.Code));
        }
    }

    [GeneratedRegex(@"`(web/client/examples/[A-Za-z0-9_-]+\.ts)`")]
    private static partial Regex TsExampleFile();

    public static TheoryData<int, string> ShellCommands()
    {
        var data = new TheoryData<int, string>();
        foreach (CodeBlock block in s_blocks.Value.Where(b => b.Language == "sh"))
        {
            string[] lines = block.Code.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                string line = lines[i].Trim();
                if (line.StartsWith("# or:", StringComparison.Ordinal))
                {
                    line = line["# or:".Length..]; // an alternative spelled out in a comment is a command too
                }
                else if (line.IndexOf('#', StringComparison.Ordinal) is int hash and >= 0 && !InQuotes(line, hash))
                {
                    line = line[..hash];
                }

                if (line.Trim().Length > 0)
                {
                    data.Add(block.Line + 1 + i, line.Trim());
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ShellCommands))]
    public async Task Every_shell_command_names_what_exists(int line, string command)
    {
        try
        {
            await CheckCommandAsync(Tokenize(command));
        }
        catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"README.md line {line}: `{command}`: {ex.Message}");
        }
    }

    // ------------------------------------------------------------------ commands

    private static async Task CheckCommandAsync(IReadOnlyList<string> tokens)
    {
        // Leading NAME=value pairs are environment settings for the command.
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        int i = 0;
        for (; i < tokens.Count && EnvironmentAssignment().Match(tokens[i]) is { Success: true } assignment; i++)
        {
            environment[assignment.Groups[1].Value.Replace("__", ":", StringComparison.Ordinal)] = await SubstituteAsync(assignment.Groups[2].Value);
        }

        string[] rest = [.. tokens.Skip(i)];
        Assert.NotEmpty(rest);
        switch (rest[0])
        {
            case "dotnet" when rest.Length > 1 && rest[1] == "run":
                await CheckDotnetRunAsync(rest[2..], environment);
                break;
            case "dotnet" when rest.Length > 1 && rest[1].EndsWith(".dll", StringComparison.Ordinal):
                CheckBuiltAssembly(rest[1]);
                await CheckServerAsync(ProjectOfAssembly(rest[1]), [.. rest[2..]], environment);
                break;
            case var script when script.EndsWith(".sh", StringComparison.Ordinal):
                Assert.Empty(environment);
                CheckScript(script, rest.Length > 1 ? rest[1] : null);
                break;
            default:
                Assert.Fail($"'{rest[0]}' is not a command this test knows how to check.");
                break;
        }
    }

    private static async Task CheckDotnetRunAsync(string[] arguments, Dictionary<string, string?> environment)
    {
        string? project = null;
        int separator = Array.IndexOf(arguments, "--");
        string[] own = separator < 0 ? arguments : arguments[..separator];
        string[] application = separator < 0 ? [] : arguments[(separator + 1)..];
        for (int i = 0; i < own.Length; i++)
        {
            switch (own[i])
            {
                case "-c" or "--configuration":
                    Assert.Contains(own[++i], new[] { "Debug", "Release" });
                    break;
                case "--project":
                    project = own[++i];
                    break;
                default:
                    Assert.Fail($"'dotnet run' option '{own[i]}' is not one this README should need.");
                    break;
            }
        }

        Assert.NotNull(project);
        Assert.True(Directory.Exists(RepositoryFiles.PathOf(project)) && Directory.GetFiles(RepositoryFiles.PathOf(project), "*.csproj").Length == 1, $"'{project}' is not a project directory.");
        for (int i = 0; i < application.Length; i++)
        {
            application[i] = await SubstituteAsync(application[i]);
        }

        await CheckServerAsync(project.TrimEnd('/'), application, environment);
    }

    /// <summary>Arguments and environment settings for a project: the server's and the load tool's are checked by the programs' own parsers.</summary>
    private static async Task CheckServerAsync(string project, string[] arguments, Dictionary<string, string?> environment)
    {
        switch (project)
        {
            case "src/Server":
                // The server's whole configuration path (shortcuts, SettingsBinder, every Validate), without starting it.
                string data = Directory.CreateTempSubdirectory("collab-readme-").FullName;
                try
                {
                    WebApplication app = CollabServerHost.Build([.. arguments, "--data-dir", data], config => config.AddInMemoryCollection(environment));
                    await app.DisposeAsync();
                }
                finally
                {
                    Directory.Delete(data, recursive: true);
                }

                break;
            case "loadtest":
                Assert.Empty(environment);
                _ = LoadTestOptions.Parse(arguments);
                break;
            case "examples/QuickStart":
                Assert.Empty(environment);
                Assert.True(arguments.Length == 0 || Uri.TryCreate(arguments[0], UriKind.Absolute, out _));
                break;
            default:
                Assert.Fail($"No check for the arguments of project '{project}'.");
                break;
        }
    }

    private static void CheckBuiltAssembly(string path)
    {
        Match match = BuiltAssembly().Match(path);
        Assert.True(match.Success, $"'{path}' is not a project's build output (<project>/bin/<configuration>/net10.0/<name>.dll).");
        Assert.True(File.Exists(RepositoryFiles.PathOf(Path.Combine(match.Groups[1].Value, match.Groups[2].Value + ".csproj"))), $"No project builds '{path}'.");
    }

    private static string ProjectOfAssembly(string path) => BuiltAssembly().Match(path).Groups[1].Value;

    private static void CheckScript(string script, string? subcommand)
    {
        string path = RepositoryFiles.PathOf(script.StartsWith("./", StringComparison.Ordinal) ? script[2..] : script);
        Assert.True(File.Exists(path), $"'{script}' does not exist.");
        if (!OperatingSystem.IsWindows())
        {
            Assert.True((File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0, $"'{script}' is not executable.");
        }

        if (subcommand is not null && !subcommand.StartsWith('-'))
        {
            // Scripts dispatch subcommands with a case statement: "  start)" or "  start|begin)".
            Assert.Matches(new Regex(@"^\s*(\w+\|)*" + Regex.Escape(subcommand) + @"(\|\w+)*\)", RegexOptions.Multiline), File.ReadAllText(path));
        }
        else if (subcommand is not null && subcommand.StartsWith("--", StringComparison.Ordinal))
        {
            // Options are dispatched the same way: "  --fast)".
            Assert.Matches(new Regex(@"^\s*" + Regex.Escape(subcommand) + @"\)", RegexOptions.Multiline), File.ReadAllText(path));
        }
    }

    /// <summary>A "$(script sub)" argument: the inner command is checked, and a value of the kind it prints stands in for it.</summary>
    private static async Task<string> SubstituteAsync(string value)
    {
        Match substitution = CommandSubstitution().Match(value);
        if (!substitution.Success)
        {
            return value;
        }

        await CheckCommandAsync(Tokenize(substitution.Groups[1].Value));
        return value.Replace(substitution.Value, "Host=localhost;Port=5433;Username=collab;Database=collab", StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ parsing

    public static IReadOnlyList<CodeBlock> CodeBlocks(string markdown)
    {
        string[] lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var blocks = new List<CodeBlock>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                continue;
            }

            string language = lines[i][3..].Trim();
            int start = i;
            // The paragraph just before the block (up to a blank line, skipping blank lines right before it).
            int end = i - 1;
            while (end >= 0 && lines[end].Trim().Length == 0)
            {
                end--;
            }

            int first = end;
            while (first > 0 && lines[first - 1].Trim().Length > 0 && !lines[first - 1].StartsWith("```", StringComparison.Ordinal))
            {
                first--;
            }

            string intro = end < 0 ? "" : string.Join(' ', lines[first..(end + 1)].Select(l => l.Trim()));

            var code = new StringBuilder();
            for (i++; i < lines.Length && !lines[i].StartsWith("```", StringComparison.Ordinal); i++)
            {
                code.Append(lines[i]).Append('\n');
            }

            Assert.True(i < lines.Length, $"README.md line {start + 1}: unterminated code block.");
            blocks.Add(new CodeBlock(language, code.ToString(), intro, start + 1));
        }

        return blocks;
    }

    /// <summary>Splits a command line as a shell would for these simple commands: spaces, double quotes, and $(...) kept whole.</summary>
    public static IReadOnlyList<string> Tokenize(string command)
    {
        var tokens = new List<string>();
        var current = new StringBuilder();
        bool quoted = false;
        bool any = false;
        int depth = 0;
        for (int i = 0; i < command.Length; i++)
        {
            char c = command[i];
            if (c == '$' && i + 1 < command.Length && command[i + 1] == '(')
            {
                depth++;
                current.Append("$(");
                i++;
                any = true;
            }
            else if (c == ')' && depth > 0)
            {
                depth--;
                current.Append(c);
            }
            else if (c == '"' && depth == 0)
            {
                quoted = !quoted;
                any = true;
            }
            else if (char.IsWhiteSpace(c) && !quoted && depth == 0)
            {
                if (any)
                {
                    tokens.Add(current.ToString());
                    current.Clear();
                    any = false;
                }
            }
            else
            {
                current.Append(c);
                any = true;
            }
        }

        Assert.False(quoted || depth > 0, $"Unbalanced quotes or $( in `{command}`.");
        if (any)
        {
            tokens.Add(current.ToString());
        }

        return tokens;
    }

    private static bool InQuotes(string line, int index) => line[..index].Count(c => c == '"') % 2 == 1;

    private static string Normalize(string code) => code.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd() + "\n";

    [GeneratedRegex(@"\]\((examples/[^)]+\.cs)\)")]
    private static partial Regex ExampleLink();

    [GeneratedRegex(@"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")]
    private static partial Regex EnvironmentAssignment();

    [GeneratedRegex(@"^([\w./-]+)/bin/(?:Debug|Release)/net10\.0/([\w.]+)\.dll$")]
    private static partial Regex BuiltAssembly();

    [GeneratedRegex(@"\$\(([^()]*)\)")]
    private static partial Regex CommandSubstitution();
}
