using System.Diagnostics;
using Xunit.Abstractions;

namespace Beit.Tests.Hostile;

/// <summary>
/// Runs a reader on hostile input with a time and allocation bound, so a hang or a runaway allocation fails the test
/// instead of stalling or killing the suite.
/// </summary>
internal static class Bounded
{
    /// <summary>Generous bound for one crafted file; the readers answer in milliseconds.</summary>
    public static readonly TimeSpan Time = TimeSpan.FromSeconds(5);

    /// <summary>Bound on what reading one crafted file may allocate (64 MiB; the crafted files are under 8 MB).</summary>
    public const long AllocationBytes = 64L << 20;

    /// <summary>Runs <paramref name="action"/> on its own thread; returns what it threw (or null), the time and the bytes it allocated.</summary>
    public static (Exception? Error, TimeSpan Elapsed, long Allocated) Run(Action action, TimeSpan? limit = null)
    {
        var task = Task.Factory.StartNew(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            Exception? error = null;
            try { action(); }
            catch (Exception e) { error = e; }
            return (error, sw.Elapsed, GC.GetAllocatedBytesForCurrentThread() - before);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var bound = limit ?? Time;
        if (!task.Wait(bound)) Assert.Fail($"The reader did not finish within {bound.TotalSeconds} s.");
        return task.Result;
    }

    /// <summary>
    /// Asserts that <paramref name="action"/> throws exactly <typeparamref name="T"/> within <see cref="Time"/>, allocating
    /// under <see cref="AllocationBytes"/>, and that the message contains every one of <paramref name="mentions"/>
    /// (the file, the field). Logs the time taken.
    /// </summary>
    public static T Throws<T>(ITestOutputHelper? log, Action action, params string[] mentions) where T : Exception
    {
        var (error, elapsed, allocated) = Run(action);
        Assert.NotNull(error);
        var typed = Assert.IsType<T>(error);
        foreach (var m in mentions) Assert.True(typed.Message.Contains(m, StringComparison.Ordinal), $"'{m}' is not in the message: {typed.Message}");
        Assert.True(allocated < AllocationBytes, $"Rejecting the file allocated {allocated:N0} bytes (bound {AllocationBytes:N0}).");
        log?.WriteLine($"{typeof(T).Name} after {elapsed.TotalMilliseconds:F1} ms, {allocated / 1024.0:F0} KiB allocated: {typed.Message}");
        return typed;
    }
}
