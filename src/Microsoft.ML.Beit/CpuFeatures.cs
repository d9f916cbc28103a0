using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Beit;

/// <summary>
/// The x86 instruction-set extensions that decide how fast libtorch (and ONNX Runtime) run low-precision math here:
/// bfloat16 GEMMs are native only with AVX-512 BF16 or AMX; elsewhere libtorch converts to float32 element by element
/// (measured 15× slower than float32 on the small from-scratch config and 40× on BEiT-base, on an AVX2-only Zen 3).
/// A null flag means unknown (not x86, or no <c>/proc/cpuinfo</c> and no runtime intrinsic to ask).
/// </summary>
internal sealed record CpuFeatures(bool? Avx2, bool? Avx512F, bool? Avx512Vnni, bool? Avx512Bf16, bool? Amx)
{
    private static readonly Lazy<CpuFeatures> s_current = new(Detect);

    /// <summary>The features of the CPU this process runs on (detected once).</summary>
    public static CpuFeatures Current => s_current.Value;

    /// <summary>Nothing known (non-x86 CPUs, or tests that want the cautious path).</summary>
    public static CpuFeatures Unknown { get; } = new(null, null, null, null, null);

    /// <summary>True when bfloat16 matrix multiplies run in hardware (AVX-512 BF16 or AMX); false when emulated or unknown.</summary>
    public bool HasNativeBf16 => Avx512Bf16 == true || Amx == true;

    /// <summary>
    /// True where ONNX Runtime's u8×s8 GEMM accumulates in int32 with no int16 saturation: AVX-512 VNNI or AVX-VNNI on
    /// x64, and every non-x86 CPU (whose int8 kernels do not use <c>vpmaddubsw</c>). Without it, int8 weights are
    /// exported with 7 bits (reduce range), as ONNX Runtime's quantization documentation recommends.
    /// </summary>
    public bool HasInt8DotProduct => !X86Base.IsSupported || Avx512Vnni == true || AvxVnni.IsSupported;

    /// <summary>One line for logs and benchmark headers, e.g. <c>x86: avx2 avx512f avx512_vnni avx512_bf16 (native bf16)</c>.</summary>
    public string Describe()
    {
        var names = new (string Name, bool? Flag)[] { ("avx2", Avx2), ("avx512f", Avx512F), ("avx512_vnni", Avx512Vnni), ("avx512_bf16", Avx512Bf16), ("amx", Amx) };
        if (names.All(n => n.Flag is null)) return "instruction set unknown (bf16 assumed emulated)";
        string has = string.Join(' ', names.Where(n => n.Flag == true).Select(n => n.Name));
        return $"x86: {(has.Length == 0 ? "none of avx2/avx512" : has)} ({(HasNativeBf16 ? "native bf16" : "bf16 emulated")})";
    }

    /// <summary>The features named in the <c>flags</c> lines of a Linux <c>/proc/cpuinfo</c> text.</summary>
    public static CpuFeatures FromCpuInfo(string cpuinfo)
    {
        var flags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in cpuinfo.Split('\n'))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || !line.AsSpan(0, colon).Trim().SequenceEqual("flags")) continue;
            foreach (var f in line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)) flags.Add(f);
            break; // every core lists the same flags
        }
        if (flags.Count == 0) return Unknown;
        return new CpuFeatures(flags.Contains("avx2"), flags.Contains("avx512f"), flags.Contains("avx512_vnni"), flags.Contains("avx512_bf16"),
            flags.Contains("amx_bf16") || flags.Contains("amx_tile"));
    }

    private static CpuFeatures Detect()
    {
        // /proc/cpuinfo names AVX-512 BF16 and AMX, which .NET's intrinsics classes do not expose.
        const string cpuinfo = "/proc/cpuinfo";
        if (OperatingSystem.IsLinux() && File.Exists(cpuinfo))
        {
            try
            {
                var parsed = FromCpuInfo(File.ReadAllText(cpuinfo));
                if (parsed != Unknown) return parsed;
            }
            catch (IOException)
            {
                // fall through to the runtime's view
            }
            catch (UnauthorizedAccessException)
            {
                // fall through to the runtime's view
            }
        }
        if (!X86Base.IsSupported) return Unknown;
        // Elsewhere the runtime reports AVX2 / AVX-512 but not BF16 or AMX: those stay unknown (treated as emulated).
        return new CpuFeatures(System.Runtime.Intrinsics.X86.Avx2.IsSupported, System.Runtime.Intrinsics.X86.Avx512F.IsSupported, null, null, null);
    }
}
