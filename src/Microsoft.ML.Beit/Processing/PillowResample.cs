namespace Microsoft.ML.Beit.Processing;

/// <summary>
/// Pillow's resampling filters, numbered as <c>PIL.Image.Resampling</c> and as Hugging Face's
/// <c>preprocessor_config.json</c> stores <c>resample</c>.
/// </summary>
public enum PillowResample
{
    /// <summary>Nearest neighbour (Pillow 0).</summary>
    Nearest = 0,
    /// <summary>Lanczos, a truncated sinc with support 3 (Pillow 1, also called ANTIALIAS).</summary>
    Lanczos = 1,
    /// <summary>Triangle filter with support 1 (Pillow 2).</summary>
    Bilinear = 2,
    /// <summary>Keys cubic with a = −0.5 and support 2 (Pillow 3).</summary>
    Bicubic = 3,
    /// <summary>Box filter with support 0.5 (Pillow 4).</summary>
    Box = 4,
    /// <summary>Hamming-windowed sinc with support 1 (Pillow 5).</summary>
    Hamming = 5,
}
