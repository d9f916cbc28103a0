using System.Diagnostics;

namespace Beit.Tests.Estimators;

/// <summary>Runs another project's build output (same configuration and framework as the tests) as a separate process.</summary>
internal static class DotnetProcess
{
    /// <summary>The path of <paramref name="dll"/> in the output folder of the project at <paramref name="projectDir"/> (relative to the repository).</summary>
    public static string Built(string projectDir, string dll)
    {
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = baseDir.Name, configuration = baseDir.Parent!.Name;
        string repository = Path.GetDirectoryName(Path.GetDirectoryName(Fixtures.Root))!;
        repository = Path.GetDirectoryName(repository)!;
        string path = Path.Combine(repository, projectDir, "bin", configuration, tfm, dll);
        Assert.True(File.Exists(path), $"{path} was not built");
        return path;
    }

    /// <summary>Runs <paramref name="dll"/>; <paramref name="environment"/> sets (or, with null, removes) variables of the child only.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string dll, IEnumerable<string> args, string? workingDirectory = null,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        using var process = Start(dll, args, workingDirectory, environment);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(180_000), $"{Path.GetFileName(dll)} did not finish in 3 minutes");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts the process with redirected output (the caller reads or kills it).</summary>
    public static Process Start(string dll, IEnumerable<string> args, string? workingDirectory = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        }
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }
}
