using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Beit.Onnx;

/// <summary>
/// The x86 instruction-set extensions that decide how fast ONNX Runtime's int8 and float GEMMs run here. .NET 10 exposes
/// AVX-VNNI but not AVX-512 VNNI/BF16 or AMX, so on Linux the kernel's <c>/proc/cpuinfo</c> flags are read as well.
/// </summary>
internal static class CpuInstructionSets
{
    private static readonly Lazy<HashSet<string>> s_flags = new(ReadFlags);

    /// <summary>The extensions present, in the order AVX2, AVX-512F, AVX-512 VNNI, AVX-VNNI, AVX-512 BF16, AMX.</summary>
    public static IReadOnlyList<string> Present
    {
        get
        {
            var list = new List<string>();
            if (Avx2.IsSupported) list.Add("AVX2");
            if (Avx512F.IsSupported) list.Add("AVX-512F");
            if (s_flags.Value.Contains("avx512_vnni")) list.Add("AVX-512 VNNI");
            if (AvxVnni.IsSupported || s_flags.Value.Contains("avx_vnni")) list.Add("AVX-VNNI");
            if (s_flags.Value.Contains("avx512_bf16")) list.Add("AVX-512 BF16");
            if (s_flags.Value.Contains("amx_int8") || s_flags.Value.Contains("amx_tile")) list.Add("AMX");
            return list;
        }
    }

    /// <summary>
    /// True on an x64 CPU with AVX-512 VNNI or AVX-VNNI, where ONNX Runtime's u8×s8 GEMM accumulates in int32 (no int16
    /// saturation); also true on non-x86 CPUs, whose int8 kernels do not use <c>vpmaddubsw</c>.
    /// </summary>
    public static bool HasInt8DotProduct =>
        !X86Base.IsSupported || AvxVnni.IsSupported || s_flags.Value.Contains("avx512_vnni") || s_flags.Value.Contains("avx_vnni");

    private static HashSet<string> ReadFlags()
    {
        var flags = new HashSet<string>(StringComparer.Ordinal);
        const string cpuinfo = "/proc/cpuinfo";
        if (!OperatingSystem.IsLinux() || !File.Exists(cpuinfo)) return flags;
        try
        {
            foreach (var line in File.ReadLines(cpuinfo))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                foreach (var f in line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)) flags.Add(f);
                break; // every core reports the same flags
            }
        }
        catch (IOException)
        {
            // Unreadable: report only what .NET itself detects.
        }
        return flags;
    }
}
