using Microsoft.ML.Beit.Checkpoints;

namespace Beit.Tests.Processing;

/// <summary>The Pillow reference fixtures in <c>test/fixtures/pillow</c> (made by its <c>generate.py</c> with Pillow 9.4).</summary>
internal static class PillowFixtures
{
    private static readonly Lazy<Dictionary<string, TensorData>> s_resample = new(() => SafeTensors.Read(PathOf("resample.safetensors")));
    private static readonly Lazy<Dictionary<string, TensorData>> s_decode = new(() => SafeTensors.Read(PathOf("decode.safetensors")));
    private static readonly Lazy<Dictionary<string, TensorData>> s_processor = new(() => SafeTensors.Read(PathOf("processor.safetensors")));
    private static readonly Lazy<Dictionary<string, TensorData>> s_labels = new(() => SafeTensors.Read(PathOf("labels.safetensors")));

    public static string PathOf(string name) => Path.Combine(Fixtures.Root, "..", "pillow", name);

    public static Dictionary<string, TensorData> Resample => s_resample.Value;
    public static Dictionary<string, TensorData> Decode => s_decode.Value;
    public static Dictionary<string, TensorData> Processor => s_processor.Value;
    public static Dictionary<string, TensorData> Labels => s_labels.Value;

    /// <summary>The index and values of the first differing byte, or null when equal.</summary>
    public static string? FirstDifference(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, int width, int channels)
    {
        if (expected.Length != actual.Length) return $"length {actual.Length} != expected {expected.Length}";
        int diff = 0, first = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == actual[i]) continue;
            diff++;
            if (first < 0) first = i;
        }
        if (first < 0) return null;
        int px = first / channels;
        return $"{diff} bytes differ; first at (x={px % width}, y={px / width}, c={first % channels}): expected {expected[first]}, got {actual[first]}";
    }
}
