using System.Globalization;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// A libtorch thread count that does not oversubscribe a busy machine. libtorch's intra-op threads synchronise at
/// every operator, so one thread sharing its core with another process holds all the others back: issue 18 measured
/// the main job at 21 min with the default 2 threads on a 2-core machine with one busy core, and 4 min 39 s with 1.
/// The rule: the physical cores, less the cores other processes keep busy (the 1-minute load average, rounded), at
/// least 1.
/// </summary>
public static class BeitThreads
{
    /// <summary>The thread count for training now, and why (cores and load read from <c>/proc</c> where present).</summary>
    public static (int Threads, string Reason) ForTraining()
    {
        int logical = Environment.ProcessorCount;
        int physical = PhysicalCores() ?? logical;
        double load = LoadAverage() ?? 0;
        int threads = Choose(physical, load);
        return (threads, string.Create(CultureInfo.InvariantCulture,
            $"{threads} libtorch thread{(threads == 1 ? "" : "s")}: {physical} physical cores, load average {load:F1} (cores busy with other work are left to it)"));
    }

    /// <summary>The rule on its own: <paramref name="physicalCores"/> less the rounded <paramref name="loadAverage"/>, within [1, physical cores].</summary>
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
