using System.Runtime;

namespace Microsoft.ML.Beit.Training;

/// <summary>
/// A stretch of TorchSharp calls during which no garbage collection can run. TorchSharp hands libtorch a temporary
/// <c>Scalar</c> by its native handle without keeping the managed object alive (every <c>a + b</c> is
/// <c>add(b, alpha: 1)</c> with a new <c>Scalar</c>), so a collection started by another thread while libtorch runs can
/// finalize that <c>Scalar</c> and free it mid-operation. It showed as c10's <c>Scalar::toFloat</c> failing with
/// "Expected false to be true" (a freed tag) a few minutes into batch-32 training. Inside a window,
/// <see cref="GC.TryStartNoGCRegion(long)"/> reserves the window's allocations up front; collections (and the
/// finalizers they queue) happen between windows, when no libtorch call holds a temporary.
/// </summary>
internal sealed class TorchCallWindow : IDisposable
{
    // Enough for a training step's managed allocations (tensor wrappers, scalars, the batch's pixel array) at the
    // sizes the trainers use; a step that allocates more ends the window early (a collection runs, as without it).
    private const long DefaultBytes = 64L << 20;
    private static readonly TorchCallWindow s_none = new(false);
    private readonly bool _owns;

    private TorchCallWindow(bool owns) => _owns = owns;

    /// <summary>Opens a window reserving <paramref name="bytes"/> of allocations, or returns one that does nothing when another is open (windows are process-wide).</summary>
    public static TorchCallWindow Open(long bytes = DefaultBytes)
    {
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return s_none;
        try
        {
            return GC.TryStartNoGCRegion(bytes) ? new TorchCallWindow(true) : s_none;
        }
        catch (InvalidOperationException)
        {
            return s_none; // another thread opened one first
        }
        catch (ArgumentOutOfRangeException)
        {
            return s_none; // more than this runtime can reserve
        }
    }

    /// <summary>Ends the window (a no-op when the reservation ran out and a collection already ended it).</summary>
    public void Dispose()
    {
        if (!_owns || GCSettings.LatencyMode != GCLatencyMode.NoGCRegion) return;
        try
        {
            GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
            // The window ended on its own (allocations over the reservation, or an induced collection).
        }
    }
}
