using System.Globalization;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// A libtorch thread count that does not oversubscribe a busy machine. libtorch's intra-op threads synchronise at
/// every operator, so one thread sharing its core with another process holds all the others back: issue 18 measured
/// the main job at 21 min with the default 2 threads on a 2-core machine with one busy core, and 4 min 39 s with 1.
/// The rule: the physical cores, less the cores other processes keep busy, at least 1. "Busy" is measured over half
/// a second from <c>/proc/stat</c> (this process's own time subtracted), because the 1-minute load average lags: right
/// after a build it still counts a busy core on an idle machine, which halved training speed. Where <c>/proc/stat</c>
/// cannot be read, the rounded load average stands in.
/// </summary>
public static class BeitThreads
{
    /// <summary>The thread count for training now, and why (cores and load read from <c>/proc</c> where present).</summary>
    public static (int Threads, string Reason) ForTraining()
    {
        int logical = Environment.ProcessorCount;
        int physical = PhysicalCores() ?? logical;
        double? measured = BusyCoresNow(logical, TimeSpan.FromMilliseconds(500));
        double busy = measured ?? LoadAverage() ?? 0;
        int threads = Choose(physical, busy);
        return (threads, string.Create(CultureInfo.InvariantCulture,
            $"{threads} libtorch thread{(threads == 1 ? "" : "s")}: {physical} physical cores, {busy:F1} busy with other work ({(measured is null ? "load average" : "measured over 0.5 s")}; busy cores are left to it)"));
    }

    /// <summary>The rule on its own: <paramref name="physicalCores"/> less the rounded <paramref name="loadAverage"/> (busy cores), within [1, physical cores].</summary>
    public static int Choose(int physicalCores, double loadAverage)
    {
        if (physicalCores < 1) physicalCores = 1;
        if (double.IsNaN(loadAverage) || loadAverage < 0) loadAverage = 0;
        double busy = Math.Min(physicalCores, Math.Round(loadAverage, MidpointRounding.AwayFromZero));
        return Math.Clamp(physicalCores - (int)busy, 1, physicalCores);
    }

    // Distinct (physical id, core id) pairs in /proc/cpuinfo; null where unknown.
    private static int? PhysicalCores()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return null;
            var cores = new HashSet<(string, string)>();
            string physical = "0";
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                if (key == "physical id") physical = value;
                else if (key == "core id") cores.Add((physical, value));
            }
            return cores.Count > 0 ? Math.Min(cores.Count, Environment.ProcessorCount) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Cores kept busy by other processes between two readings: the machine's non-idle time less this process's, as a
    /// share of all time, times the logical CPUs. Inputs are <c>/proc/stat</c>'s first line and <c>/proc/self/stat</c>.
    /// </summary>
    internal static double? BusyCores(string statBefore, string statAfter, string selfBefore, string selfAfter, int logicalCpus)
    {
        if (CpuTimes(statBefore) is not var (total0, idle0) || CpuTimes(statAfter) is not var (total1, idle1)
            || SelfTime(selfBefore) is not long self0 || SelfTime(selfAfter) is not long self1)
            return null;
        long total = total1 - total0;
        if (total <= 0) return null;
        long otherBusy = (total - (idle1 - idle0)) - (self1 - self0);
        return Math.Clamp((double)otherBusy / total, 0, 1) * logicalCpus;
    }

    // Sum of all fields and idle + iowait of the aggregate "cpu" line of /proc/stat.
    private static (long Total, long Idle)? CpuTimes(string stat)
    {
        var line = stat.Split('\n', 2)[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (line.Length < 6 || line[0] != "cpu") return null;
        long total = 0;
        var fields = new long[line.Length - 1];
        for (int i = 1; i < line.Length; i++)
        {
            if (!long.TryParse(line[i], NumberStyles.None, CultureInfo.InvariantCulture, out fields[i - 1])) return null;
            total = checked(total + fields[i - 1]);
        }
        // Guest time is already counted in user time (proc(5)).
        if (fields.Length >= 10) total -= fields[8] + fields[9];
        return (total, fields[3] + fields[4]);
    }

    // utime + stime (fields 14 and 15) of /proc/<pid>/stat; the command name in parentheses may contain spaces.
    private static long? SelfTime(string stat)
    {
        int close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var f = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return f.Length > 12 && long.TryParse(f[11], NumberStyles.None, CultureInfo.InvariantCulture, out long u)
            && long.TryParse(f[12], NumberStyles.None, CultureInfo.InvariantCulture, out long s) ? u + s : null;
    }

    private static double? BusyCoresNow(int logicalCpus, TimeSpan window)
    {
        try
        {
            if (!File.Exists("/proc/stat") || !File.Exists("/proc/self/stat")) return null;
            string stat0 = File.ReadAllText("/proc/stat"), self0 = File.ReadAllText("/proc/self/stat");
            Thread.Sleep(window);
            return BusyCores(stat0, File.ReadAllText("/proc/stat"), self0, File.ReadAllText("/proc/self/stat"), logicalCpus);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static double? LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg")
                && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double l) ? l : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
