namespace Microsoft.ML.Beit.Modeling;

/// <summary>
/// Shapes and index tables of BEiT's token grid, defined once for the TorchSharp model and the ONNX exporter.
/// </summary>
internal static class BeitGeometry
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

    /// <summary>
    /// Resizes an absolute position table <c>[1, N0+1, D]</c> (row-major) to a <paramref name="gridHeight"/>×<paramref name="gridWidth"/>
    /// patch grid as transformers' <c>BeitEmbeddings.interpolate_pos_encoding</c> does (4.45 onward, and 5.x): the CLS row is
    /// kept, the patch rows are viewed as a <c>√N0×√N0</c> grid of <c>D</c> channels and resized bicubically (PyTorch,
    /// <c>align_corners=False</c>) to <c>(H/P, W/P)</c>. At the native square grid the table is returned unchanged, as
    /// transformers returns it without interpolating.
    /// </summary>
    /// <exception cref="InvalidDataException">The table does not hold a square number of patch rows of width <paramref name="dim"/>.</exception>
    public static float[] InterpolatePositionEmbeddings(float[] table, int dim, int gridHeight, int gridWidth)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gridHeight);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gridWidth);
        if (table.Length % dim != 0 || table.Length / dim < 2)
            throw new InvalidDataException($"An absolute position table of {table.Length} values is not [1, N+1, {dim}].");
        int positions = table.Length / dim - 1;
        int side = (int)Math.Sqrt(positions);
        if (side * side != positions)
            throw new InvalidDataException($"An absolute position table of {positions} patch rows is not a square grid.");
        if (gridHeight == side && gridWidth == side) return table;

        // [N0, D] token-major → [D, side, side] channel planes, the layout F.interpolate resizes.
        var planes = new float[checked(dim * positions)];
        for (int n = 0; n < positions; n++)
            for (int c = 0; c < dim; c++)
                planes[c * positions + n] = table[(1 + n) * dim + c];
        var resized = TorchInterpolation.ResizeBicubic(planes, dim, side, side, gridHeight, gridWidth);
        int patches = checked(gridHeight * gridWidth);
        var result = new float[checked((patches + 1) * dim)];
        Array.Copy(table, result, dim);
        for (int n = 0; n < patches; n++)
            for (int c = 0; c < dim; c++)
                result[(1 + n) * dim + c] = resized[c * patches + n];
        return result;
    }
}
