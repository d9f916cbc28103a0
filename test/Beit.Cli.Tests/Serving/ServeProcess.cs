using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Beit.Tests.Estimators;

namespace Beit.Tests.Serving;

/// <summary>
/// <c>beit serve &lt;model&gt; --port 0</c> as a separate process on a free loopback port: the address is read from the
/// one "listening on" line the tool prints. Disposing kills it if it still runs.
/// </summary>
internal sealed partial class ServeProcess : IDisposable
{
    public static readonly string Beit = DotnetProcess.Built("samples/Beit.Cli", "beit.dll");

    private readonly Process _process;
    private readonly StringBuilder _stderr;
    private readonly Task<string> _stdoutRest;

    private ServeProcess(Process process, StringBuilder stderr, Uri address, Task<string> stdoutRest)
    {
        _process = process;
        _stderr = stderr;
        BaseAddress = address;
        _stdoutRest = stdoutRest;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(120) };
    }

    /// <summary>The server's root, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BaseAddress { get; }

    /// <summary>A client on <see cref="BaseAddress"/>.</summary>
    public HttpClient Client { get; }

    public int ProcessId => _process.Id;

    /// <summary>What the server wrote to stderr so far.</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr) return _stderr.ToString();
        }
    }

    [GeneratedRegex(@"listening on (http://\S+)")]
    private static partial Regex Listening();

    /// <summary>Starts the server and waits (at most 2 minutes) until it listens.</summary>
    public static ServeProcess Start(string model, params string[] options)
    {
        var process = DotnetProcess.Start(Beit, ["serve", model, "--host", "127.0.0.1", "--port", "0", .. options]);
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null) lock (stderr) stderr.AppendLine(e.Data);
        };
        process.BeginErrorReadLine();
        var first = process.StandardOutput.ReadLineAsync();
        if (!first.Wait(TimeSpan.FromMinutes(2)) || first.Result is not { } line || Listening().Match(line) is not { Success: true } m)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
            string err;
            lock (stderr) err = stderr.ToString();
            throw new InvalidOperationException($"beit serve did not start: stdout '{(first.IsCompleted ? first.Result : "<nothing>")}', stderr: {err}");
        }
        return new ServeProcess(process, stderr, new Uri(m.Groups[1].Value.TrimEnd('/') + "/"), process.StandardOutput.ReadToEndAsync());
    }

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    private static extern int SysKill(int pid, int signal);

    /// <summary>Sends SIGTERM (what a container runtime or systemd sends to stop a service).</summary>
    public void Terminate()
    {
        Assert.Equal(0, SysKill(_process.Id, 15));
    }

    /// <summary>Waits for the process to end and returns its exit code.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        Assert.True(_process.WaitForExit(timeout), $"beit serve did not exit within {timeout.TotalSeconds} s; stderr: {Stderr}");
        _process.WaitForExit(); // flushes the redirected streams
        return _process.ExitCode;
    }

    public void Dispose()
    {
        Client.Dispose();
        // SIGTERM first, as a service manager stops it: the server drains and its exit handlers remove its temporary
        // files; SIGKILL only if it does not stop (a killed process leaves them for the next run's stale sweep).
        if (!_process.HasExited && SysKill(_process.Id, 15) == 0) _process.WaitForExit(20_000);
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _stdoutRest.Wait(TimeSpan.FromSeconds(5));
        _process.Dispose();
    }
}
