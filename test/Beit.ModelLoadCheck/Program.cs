// Loads a saved BEiT model.zip in a fresh process, the way an application that never built the pipeline would:
// nothing from Microsoft.ML.Beit is touched before mlContext.Model.Load. Scores the given images and prints the
// requested output columns as JSON, so the test can compare them bit for bit with the process that saved the model.
//
// usage: Beit.ModelLoadCheck <model.zip> <column,column,...> <image>...
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: Beit.ModelLoadCheck <model.zip> <column,column,...> <image>...");
    return 2;
}

static bool BeitLoaded() => AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name == "Microsoft.ML.Beit");

bool loadedBefore = BeitLoaded();
var ml = new MLContext();
var model = ml.Model.Load(args[0], out var inputSchema);
bool loadedAfter = BeitLoaded();

var data = ml.Data.LoadFromEnumerable(args.Skip(2).Select(p => new Row { ImagePath = p }).ToArray());
var scored = model.Transform(data);
var columns = args[1].Split(',').Select(name => scored.Schema[name]).ToArray();
var rows = new List<Dictionary<string, object>>();
using (var cursor = scored.GetRowCursor(columns))
{
    var readers = columns.Select(c => Reader(cursor, c)).ToArray();
    while (cursor.MoveNext())
        rows.Add(columns.Select((c, i) => (c.Name, Value: readers[i]())).ToDictionary(x => x.Name, x => x.Value));
}

// A PredictionEngine over the loaded model must give the same first row.
bool engineMatches = columns[0].Name switch
{
    "Score" => Predict<ScoreOutput>(ml, model, inputSchema, args[2]).Score.SequenceEqual((float[])rows[0]["Score"]),
    "Features" => Predict<FeaturesOutput>(ml, model, inputSchema, args[2]).Features.SequenceEqual((float[])rows[0]["Features"]),
    "PredictedLabel" => Predict<LabelMapOutput>(ml, model, inputSchema, args[2]).PredictedLabel.SequenceEqual((int[])rows[0]["PredictedLabel"]),
    _ => false,
};
(model as IDisposable)?.Dispose();

var result = new Dictionary<string, object>
{
    ["beitLoadedBeforeLoad"] = loadedBefore,
    ["beitLoadedAfterLoad"] = loadedAfter,
    ["inputColumns"] = inputSchema.Select(c => c.Name).ToArray(),
    ["rows"] = rows,
    ["engineFirstRowFirstColumnMatches"] = engineMatches,
};
Console.WriteLine(JsonSerializer.Serialize(result));
return 0;

static T Predict<T>(MLContext ml, ITransformer model, DataViewSchema inputSchema, string path) where T : class, new()
{
    using var engine = ml.Model.CreatePredictionEngine<Row, T>(model, inputSchema: inputSchema);
    return engine.Predict(new Row { ImagePath = path });
}

static Func<object> Reader(DataViewRowCursor cursor, DataViewSchema.Column column)
{
    var type = column.Type;
    if (type is VectorDataViewType v && v.ItemType == NumberDataViewType.Single) return Vector<float>(cursor, column);
    if (type is VectorDataViewType w && w.ItemType == NumberDataViewType.Int32) return Vector<int>(cursor, column);
    if (type is TextDataViewType)
    {
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
        return () => { ReadOnlyMemory<char> s = default; getter(ref s); return s.ToString(); };
    }
    if (type is KeyDataViewType)
    {
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.GetKeyValues(ref names);
        var values = names.DenseValues().Select(n => n.ToString()).ToArray();
        var getter = cursor.GetGetter<uint>(column);
        return () => { uint k = 0; getter(ref k); return k == 0 ? "" : values[k - 1]; };
    }
    throw new NotSupportedException($"Column {column.Name} is {type}.");
}

static Func<object> Vector<T>(DataViewRowCursor cursor, DataViewSchema.Column column)
{
    var getter = cursor.GetGetter<VBuffer<T>>(column);
    return () => { VBuffer<T> b = default; getter(ref b); return b.DenseValues().ToArray(); };
}

public sealed class Row
{
    public string ImagePath { get; set; } = "";
}

public sealed class ScoreOutput
{
    public float[] Score { get; set; } = [];
}

public sealed class FeaturesOutput
{
    public float[] Features { get; set; } = [];
}

public sealed class LabelMapOutput
{
    public int[] PredictedLabel { get; set; } = [];
}
