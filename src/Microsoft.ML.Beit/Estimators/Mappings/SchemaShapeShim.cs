using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators.Mappings;

/// <summary>
/// Stands in for a stage's work when propagating a <c>SchemaShape</c>: ML.NET offers no public way to build schema
/// shape columns, so <c>GetOutputSchema</c> runs built-in estimators over no-op mappings that "add" every internal
/// column of <see cref="BeitColumns.Table"/> with its type. They are never fitted or saved.
/// </summary>
internal static class SchemaShapeShim
{
    private sealed class Empty
    {
    }

    private sealed class One<T>
    {
        public T Value { get; set; } = default!;
    }

    /// <summary>
    /// The output shape of a stage: <paramref name="inputSchema"/> plus the internal columns, then
    /// <paramref name="keyMapping"/>, the copies to the user's names and the drop of every internal column.
    /// </summary>
    public static SchemaShape OutputShape(TransformsCatalog catalog, SchemaShape inputSchema,
        (string UserColumn, string InternalName)[] outputs, IEstimator<ITransformer>? keyMapping = null)
    {
        var chain = AddAll(catalog);
        if (keyMapping != null) chain = chain.Append(keyMapping);
        foreach (var (user, name) in outputs) chain = chain.Append(catalog.CopyColumns(user, name));
        return chain.Append(catalog.DropColumns(BeitColumns.All)).GetOutputSchema(inputSchema);
    }

    /// <summary><paramref name="inputSchema"/> plus every internal column.</summary>
    public static SchemaShape WithInternalColumns(TransformsCatalog catalog, SchemaShape inputSchema) => AddAll(catalog).GetOutputSchema(inputSchema);

    private static IEstimator<ITransformer> AddAll(TransformsCatalog catalog)
    {
        IEstimator<ITransformer> chain = new EstimatorChain<ITransformer>();
        foreach (var (name, shape) in BeitColumns.Table) chain = chain.Append(Add(catalog, name, shape));
        return chain;
    }

    private static IEstimator<ITransformer> Add(TransformsCatalog catalog, string name, BeitColumnShape shape) => shape switch
    {
        BeitColumnShape.Single => Add<float>(catalog, name, shape),
        BeitColumnShape.Text => Add<string>(catalog, name, shape),
        BeitColumnShape.Singles or BeitColumnShape.KnownSizeSingles => Add<float[]>(catalog, name, shape),
        BeitColumnShape.Bytes => Add<byte[]>(catalog, name, shape),
        BeitColumnShape.Int32s or BeitColumnShape.Size => Add<int[]>(catalog, name, shape),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, null),
    };

    private static IEstimator<ITransformer> Add<T>(TransformsCatalog catalog, string name, BeitColumnShape shape)
    {
        var definition = SchemaDefinition.Create(typeof(One<T>), SchemaDefinition.Direction.Write);
        definition[0].ColumnName = name;
        definition[0].ColumnType = BeitColumns.TypeOf(shape);
        return catalog.CustomMapping<Empty, One<T>>(static (_, _) => { }, contractName: null, outputSchemaDefinition: definition);
    }
}
