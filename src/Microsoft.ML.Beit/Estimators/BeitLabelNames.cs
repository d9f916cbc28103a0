namespace Microsoft.ML.Beit.Estimators;

/// <summary>Class names as key values: one distinct name per class index.</summary>
internal static class BeitLabelNames
{
    /// <summary>
    /// Appends <c> (index)</c> to every name that occurs more than once (ImageNet-1k's <c>id2label</c> has two
    /// "crane"s, for instance): <c>MapValueToKey</c> keeps one key per distinct value, so duplicates would shift every
    /// later key away from its class index and break <c>Score</c>/<c>PredictedLabel</c> alignment.
    /// </summary>
    public static string[] MakeUnique(string[] names)
    {
        var counts = names.GroupBy(n => n, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var result = new string[names.Length];
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < names.Length; i++)
        {
            string name = counts[names[i]] > 1 ? $"{names[i]} ({i})" : names[i];
            while (!used.Add(name)) name += $" ({i})";
            result[i] = name;
        }
        return result;
    }
}
