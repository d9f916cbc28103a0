using Microsoft.ML;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Data;

namespace Beit.Tests.Estimators;

public sealed class ImagePathRow
{
    public string ImagePath { get; set; } = "";
}

public sealed class LabelledImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed class ImageBytesRow
{
    public byte[] ImageBytes { get; set; } = [];
}

public sealed class PixelRow
{
    public float[] PixelValues { get; set; } = [];
}

public sealed class ClassifierPrediction
{
    public float[] Score { get; set; } = [];
    public string PredictedLabel { get; set; } = "";
}

/// <summary>Inputs the pipeline tests share: the fixture photos and the fixtures' reference tensors.</summary>
internal static class PipelineData
{
    public static readonly string[] Photos = ["chelsea.png", "astronaut.png", "coffee.png", "camera.png"];

    public static string[] PhotoPaths() => Photos.Select(Fixtures.Preproc).ToArray();

    public static IDataView Paths(MLContext ml, IEnumerable<string> paths) =>
        ml.Data.LoadFromEnumerable(paths.Select(p => new ImagePathRow { ImagePath = p }).ToArray());

    public static IReadOnlyDictionary<string, TensorData> Io(string fixture) =>
        SafeTensors.Read(Path.Combine(Fixtures.Tiny(fixture), "io.safetensors"));

    /// <summary>Image <paramref name="index"/> of a batched tensor, flattened.</summary>
    public static float[] Item(TensorData batch, int index)
    {
        var all = batch.ToFloatArray();
        int per = all.Length / (int)batch.Shape[0];
        return all.AsSpan(index * per, per).ToArray();
    }

    /// <summary>A column of one vector per row, read to arrays.</summary>
    public static List<T[]> Vectors<T>(IDataView data, string column)
    {
        var result = new List<T[]>();
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor([col]);
        var getter = cursor.GetGetter<VBuffer<T>>(col);
        VBuffer<T> v = default;
        while (cursor.MoveNext())
        {
            getter(ref v);
            result.Add(v.DenseValues().ToArray());
        }
        return result;
    }

    public static List<float[]> Floats(IDataView data, string column) => Vectors<float>(data, column);

    public static List<byte[]> Bytes(IDataView data, string column) => Vectors<byte>(data, column);

    public static List<int[]> Ints(IDataView data, string column) => Vectors<int>(data, column);

    public static List<string> Strings(IDataView data, string column)
    {
        var result = new List<string>();
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor([col]);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(col);
        ReadOnlyMemory<char> v = default;
        while (cursor.MoveNext())
        {
            getter(ref v);
            result.Add(v.ToString());
        }
        return result;
    }

    /// <summary>A key column read as its key values (names).</summary>
    public static List<string> KeyNames(IDataView data, string column)
    {
        var col = data.Schema[column];
        VBuffer<ReadOnlyMemory<char>> names = default;
        col.GetKeyValues(ref names);
        var values = names.DenseValues().Select(n => n.ToString()).ToArray();
        var result = new List<string>();
        using var cursor = data.GetRowCursor([col]);
        var getter = cursor.GetGetter<uint>(col);
        uint key = 0;
        while (cursor.MoveNext())
        {
            getter(ref key);
            result.Add(key == 0 ? "<missing>" : values[key - 1]);
        }
        return result;
    }

    public static float[] Softmax(float[] logits)
    {
        double max = logits.Max(), sum = logits.Sum(v => Math.Exp(v - max));
        return logits.Select(v => (float)(Math.Exp(v - max) / sum)).ToArray();
    }
}
