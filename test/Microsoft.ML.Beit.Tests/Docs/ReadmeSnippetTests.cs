using System.Text;
using System.Text.RegularExpressions;
using Beit.Tests.Estimators;
using Beit.Tests.Hub;
using Xunit.Abstractions;

namespace Beit.Tests.Docs;

/// <summary>
/// Every <c>```csharp</c> block of README.md (and docs/*.md) is compiled into one scratch console application that
/// references the library projects, and run against the bundled fixtures, so README cannot drift from the code.
/// Rules for a block: leading <c>using</c> directives are hoisted; type declarations (at column 0) come last and become
/// file-level types; the statements in between become one method. <c>&lt;!-- snippet: compile-only (why) --&gt;</c> on
/// the line before a block compiles it without running it (for blocks that need a full-size model). Hub model ids are
/// served by the test's fake Hub (the tiny checkpoint as <c>microsoft/beit-base-patch16-224</c>), never the network.
/// </summary>
[Trait("Category", "Slow")]
public sealed class ReadmeSnippetTests(ITestOutputHelper output)
{
    private const string CompileOnly = "<!-- snippet: compile-only";

    private static readonly Regex s_usingDirective = new(@"^using\s+(static\s+)?[\w.]+(\s*=\s*[\w.<>, ]+)?\s*;", RegexOptions.CultureInvariant);
    private static readonly Regex s_typeDeclaration = new(@"^((public|internal|sealed|static|abstract|partial)\s+)*(class|record|struct|interface|enum)\b", RegexOptions.CultureInvariant);

    /// <summary>
    /// The names the snippets use, relative to the working directory, and the bundled fixture each one is a copy of.
    /// The checkpoint names are the tiny <c>cls_relpos</c> model with the <c>preprocessor_config.json</c> of
    /// <c>cls_relpos_processor</c> (the real ones would need the Hub).
    /// </summary>
    private static IEnumerable<(string Name, string Fixture)> WorkingFiles()
    {
        foreach (var checkpoint in new[] { "beit-base-patch16-224", "beit-checkpoint", "path/to/beit-base-patch16-224", "path/to/beit-checkpoint" })
        {
            yield return (checkpoint + "/config.json", Fixtures.Tiny("cls_relpos/config.json"));
            yield return (checkpoint + "/model.safetensors", Fixtures.Tiny("cls_relpos/model.safetensors"));
            yield return (checkpoint + "/preprocessor_config.json", Fixtures.Tiny("cls_relpos_processor/preprocessor_config.json"));
        }
        yield return ("beitv2_base_patch16_224.pth", Path.Combine(Fixtures.Root, "..", "timm-beit", "cls_relpos_timm.pth"));
        yield return ("config.json", Path.Combine(Fixtures.Root, "..", "timm-beit", "config.json"));   // timm's, next to the .pth
        yield return ("cat.png", Fixtures.Preproc("chelsea.png"));
        yield return ("dog.png", Fixtures.Preproc("coffee.png"));
    }

    /// <summary>A block: <paramref name="FirstLine"/> is the 1-based line of its first code line in <paramref name="Document"/>.</summary>
    private sealed record Snippet(string Where, string Document, int FirstLine, bool Run, List<string> Lines);

    [Fact]
    public async Task EveryCSharpBlockInTheReadmeCompilesAndRuns()
    {
        string repository = Path.GetFullPath(Path.Combine(Fixtures.Root, "..", "..", ".."));
        var documents = new List<string> { Path.Combine(repository, "README.md") };
        string docs = Path.Combine(repository, "docs");
        if (Directory.Exists(docs)) documents.AddRange(Directory.GetFiles(docs, "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        var snippets = documents.SelectMany(d => Extract(d, Path.GetRelativePath(repository, d))).ToList();
        Assert.True(snippets.Count >= 10, $"only {snippets.Count} C# blocks found in {string.Join(", ", documents)}");

        using var root = new TempDir();
        string project = Path.Combine(root, "snippets");
        Directory.CreateDirectory(project);
        WriteProject(project, repository, snippets);
        string work = Path.Combine(root, "work");
        foreach (var (name, fixture) in WorkingFiles())
        {
            string target = Path.Combine(work, name);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(fixture, target);
        }

        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = baseDir.Name, configuration = baseDir.Parent!.Name;
        // DotnetProcess runs "dotnet <first> <args>": here "dotnet build ...".
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var build = DotnetProcess.Run("build", [project, "-c", configuration, "-nologo", "-v", "q", "-nodeReuse:false"], project);
        Assert.True(build.ExitCode == 0, "the README snippets do not build:\n" + build.Stdout + build.Stderr + Listing(project));

        output.WriteLine($"{snippets.Count} blocks ({snippets.Count(s => !s.Run)} compile-only): build {clock.Elapsed.TotalSeconds:F1} s");
        clock.Restart();
        await using var hub = await FakeHub.StartAsync(HubRepos.Create(out _, out _));
        var environment = HubEntryPointTests.Environment(hub.Endpoint, Path.Combine(root, "hub-cache"));
        var run = DotnetProcess.Run(Path.Combine(project, "bin", configuration, tfm, "Snippets.dll"), [], work, environment);
        output.WriteLine($"run {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(run.ExitCode == 0, $"a README snippet failed (exit code {run.ExitCode}):\n{run.Stdout}\n{run.Stderr}");
        foreach (var s in snippets.Where(s => s.Run)) Assert.Contains("ran " + s.Where, run.Stdout);
    }

    private static IEnumerable<Snippet> Extract(string path, string name)
    {
        var lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim() != "```csharp") continue;
            int previous = i - 1;
            while (previous >= 0 && lines[previous].Trim().Length == 0) previous--;
            bool run = previous < 0 || !lines[previous].TrimStart().StartsWith(CompileOnly, StringComparison.Ordinal);
            var body = new List<string>();
            int start = i + 1;
            for (i++; i < lines.Length && lines[i].Trim() != "```"; i++) body.Add(lines[i]);
            Assert.True(i < lines.Length, $"{name} line {start}: unterminated ```csharp block");
            yield return new Snippet($"{name} line {start}", path, start + 1, run, body);
        }
    }

    private static void WriteProject(string project, string repository, List<Snippet> snippets)
    {
        ScratchProject.Write(project, "Snippets", training: true);

        var program = new StringBuilder("""
            var snippets = new (string Where, Func<Task> Run)[]
            {

            """);
        for (int n = 0; n < snippets.Count; n++)
        {
            var (code, isAsync) = Wrap(snippets[n], $"Snippets.S{n:D2}");
            File.WriteAllText(Path.Combine(project, $"S{n:D2}.cs"), code);
            if (!snippets[n].Run) continue;
            string call = isAsync ? $"Snippets.S{n:D2}.Snippet.Run" : $"() => {{ Snippets.S{n:D2}.Snippet.Run(); return Task.CompletedTask; }}";
            program.Append($"    (\"{snippets[n].Where}\", {call}),\n");
        }
        program.Append("""
            };
            foreach (var (where, run) in snippets)
            {
                Console.WriteLine("running " + where);
                try { await run(); }
                catch (Exception e) { Console.Error.WriteLine($"{where}: {e}"); return 1; }
                Console.WriteLine("ran " + where);
            }
            return 0;

            """);
        File.WriteAllText(Path.Combine(project, "Program.cs"), program.ToString());
    }

    /// <summary>Leading usings to the top of the file, the statements into <c>Snippet.Run</c>, trailing types after it.</summary>
    private static (string Code, bool IsAsync) Wrap(Snippet snippet, string ns)
    {
        var lines = snippet.Lines;
        int firstStatement = 0;
        while (firstStatement < lines.Count && (s_usingDirective.IsMatch(lines[firstStatement]) || lines[firstStatement].Trim().Length == 0)) firstStatement++;
        int firstType = firstStatement;
        while (firstType < lines.Count && !s_typeDeclaration.IsMatch(lines[firstType])) firstType++;
        var statements = lines.Skip(firstStatement).Take(firstType - firstStatement).ToList();
        bool isAsync = statements.Any(l => l.Contains("await ", StringComparison.Ordinal));

        var code = new StringBuilder();
        code.AppendLine($"// {snippet.Where}");
        foreach (var u in lines.Take(firstStatement)) code.AppendLine(u);
        code.AppendLine($"namespace {ns};");
        code.AppendLine("internal static class Snippet");
        code.AppendLine("{");
        code.AppendLine(isAsync ? "    public static async Task Run()" : "    public static void Run()");
        code.AppendLine("    {");
        // Compiler errors and stack traces name the document and its line.
        code.AppendLine($"#line {snippet.FirstLine + firstStatement} \"{snippet.Document}\"");
        foreach (var s in statements) code.AppendLine(s);
        code.AppendLine("#line default");
        code.AppendLine("    }");
        code.AppendLine("}");
        if (firstType < lines.Count) code.AppendLine($"#line {snippet.FirstLine + firstType} \"{snippet.Document}\"");
        foreach (var t in lines.Skip(firstType)) code.AppendLine(t);
        return (code.ToString(), isAsync);
    }

    private static string Listing(string project) =>
        string.Concat(Directory.GetFiles(project, "*.cs").Order(StringComparer.Ordinal).Select(f => $"\n--- {Path.GetFileName(f)}\n{File.ReadAllText(f)}"));
}
