namespace Microsoft.ML.Beit.Modeling;

/// <summary>
/// Shapes and index tables of BEiT's token grid, defined once for the TorchSharp model and the ONNX exporter.
/// </summary>
public static class BeitGeometry
{
    /// <summary>Rows of a relative position bias table for a <paramref name="gridH"/>×<paramref name="gridW"/> window: (2H−1)(2W−1) offsets plus 3 CLS rows.</summary>
    public static int RelativeTableRows(int gridH, int gridW) => (2 * gridH - 1) * (2 * gridW - 1) + 3;

    /// <summary>
    /// The relative position index <c>R</c> of shape <c>[N+1, N+1]</c> (row-major, N = gridH·gridW), as Hugging Face
    /// builds it: patch offsets first, then CLS→token, token→CLS and CLS→CLS in the last three table rows.
    /// </summary>
    public static long[] RelativePositionIndex(int gridH, int gridW)
    {
        int n = gridH * gridW, t = n + 1, m = RelativeTableRows(gridH, gridW);
        var r = new long[t * t];
        for (int a = 0; a < n; a++)
        {
            int i = a / gridW, j = a % gridW;
            for (int b = 0; b < n; b++)
            {
                int k = b / gridW, l = b % gridW;
                r[(1 + a) * t + 1 + b] = (i - k + gridH - 1) * (2 * gridW - 1) + (j - l + gridW - 1);
            }
        }
        for (int q = 0; q < t; q++) r[q] = m - 3;      // row 0: CLS query
        for (int q = 0; q < t; q++) r[q * t] = m - 2;  // column 0: CLS key
        r[0] = m - 1;
        return r;
    }
}
