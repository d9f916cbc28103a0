namespace Microsoft.ML.Beit.Modeling;

/// <summary>
/// Hugging Face's <c>BeitRelativePositionBias</c> evaluated in C#: the dense bias <c>[nH, N+1, N+1]</c> added to the
/// attention scores, for any patch grid. At a grid other than the table's window the offset rows are resized as
/// transformers does since 2024 (bilinear, <c>align_corners=False</c>, the three CLS rows kept; <c>BeitRelativePositionBias.forward</c>
/// with <c>interpolate_pos_encoding</c> in <c>modeling_beit.py</c>). The TorchSharp module of the same Hugging Face name lives
/// in Microsoft.ML.Beit.Training; this is the scoring side's table arithmetic for the ONNX exporter.
/// </summary>
internal static class RelativePositionBiasTable
{
    /// <summary>
    /// Resizes a table <c>[M0, nH]</c> built for a <paramref name="fromHeight"/>×<paramref name="fromWidth"/> window to the
    /// table of a <paramref name="toHeight"/>×<paramref name="toWidth"/> window. Returns the input itself when the windows match.
    /// </summary>
    public static float[] InterpolateTable(float[] table, int numHeads, int fromHeight, int fromWidth, int toHeight, int toWidth)
    {
        ArgumentNullException.ThrowIfNull(table);
        int m0 = BeitGeometry.RelativeTableRows(fromHeight, fromWidth);
        if (table.Length != checked(m0 * numHeads))
            throw new ArgumentException($"A relative position table for a {fromHeight}x{fromWidth} window must be [{m0}, {numHeads}], got {table.Length} values.", nameof(table));
        if (fromHeight == toHeight && fromWidth == toWidth) return table;

        int oldH = 2 * fromHeight - 1, oldW = 2 * fromWidth - 1, newH = 2 * toHeight - 1, newW = 2 * toWidth - 1;
        // Offset rows as nH planes of oldH×oldW (channels first), like transformers' reshape + permute.
        var planes = new float[numHeads * oldH * oldW];
        for (int r = 0; r < oldH * oldW; r++)
            for (int h = 0; h < numHeads; h++)
                planes[h * oldH * oldW + r] = table[r * numHeads + h];
        var resized = TorchInterpolation.ResizeBilinear(planes, numHeads, oldH, oldW, newH, newW);
        int rows = newH * newW;
        var result = new float[(rows + 3) * numHeads];
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < numHeads; h++)
                result[r * numHeads + h] = resized[h * rows + r];
        Array.Copy(table, (m0 - 3) * numHeads, result, rows * numHeads, 3 * numHeads);
        return result;
    }

    /// <summary>
    /// Gathers the dense bias <c>[nH, N+1, N+1]</c> (row-major) of a <paramref name="gridHeight"/>×<paramref name="gridWidth"/>
    /// window from a table <c>[M, nH]</c> already sized for that window, through <see cref="BeitGeometry.RelativePositionIndex"/>.
    /// </summary>
    public static float[] Gather(float[] table, int numHeads, int gridHeight, int gridWidth)
    {
        ArgumentNullException.ThrowIfNull(table);
        int m = BeitGeometry.RelativeTableRows(gridHeight, gridWidth);
        if (table.Length != checked(m * numHeads))
            throw new ArgumentException($"The table must be [{m}, {numHeads}] for a {gridHeight}x{gridWidth} window, got {table.Length} values.", nameof(table));
        var index = BeitGeometry.RelativePositionIndex(gridHeight, gridWidth);
        int t = gridHeight * gridWidth + 1, tt = t * t;
        var bias = new float[checked(numHeads * tt)];
        for (int q = 0; q < tt; q++)
        {
            int row = (int)index[q] * numHeads;
            for (int h = 0; h < numHeads; h++) bias[h * tt + q] = table[row + h];
        }
        return bias;
    }

    /// <summary>
    /// The dense bias <c>[nH, N+1, N+1]</c> for a <paramref name="gridHeight"/>×<paramref name="gridWidth"/> patch grid from a
    /// checkpoint table trained for a square <paramref name="tableGrid"/>×<paramref name="tableGrid"/> window
    /// (<c>image_size / patch_size</c>).
    /// </summary>
    public static float[] Compute(float[] table, int numHeads, int tableGrid, int gridHeight, int gridWidth) =>
        Gather(InterpolateTable(table, numHeads, tableGrid, tableGrid, gridHeight, gridWidth), numHeads, gridHeight, gridWidth);
}
