namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Class names as the ML.NET stages use them for key values: one distinct name per class index, so that
/// <c>PredictedLabel</c> key <c>k</c> is class <c>k − 1</c> and lines up with slot <c>k − 1</c> of <c>Score</c>.
/// </summary>
public static class BeitLabelNames
{
    /// <summary>The names of <paramref name="config"/>'s classes (<c>id2label</c>, or <c>LABEL_i</c>), made unique.</summary>
    public static string[] FromConfig(BeitConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return MakeUnique(Enumerable.Range(0, config.NumLabels).Select(config.LabelName).ToArray());
    }

    /// <summary>
    /// Appends <c> (index)</c> to every name that occurs more than once (ImageNet-1k's <c>id2label</c> has two
    /// "crane"s, for instance): <c>MapValueToKey</c> keeps one key per distinct value, so duplicates would shift every
    /// later key away from its class index and break <c>Score</c>/<c>PredictedLabel</c> alignment.
    /// </summary>
    public static string[] MakeUnique(IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var counts = names.GroupBy(n => n, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var result = new string[names.Count];
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++)
        {
            string name = counts[names[i]] > 1 ? $"{names[i]} ({i})" : names[i];
            while (!used.Add(name)) name += $" ({i})";
            result[i] = name;
        }
        return result;
    }
}
