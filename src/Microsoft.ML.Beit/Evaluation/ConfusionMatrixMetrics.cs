using System.Globalization;
using System.Text;

namespace Microsoft.ML.Beit.Evaluation;

/// <summary>
/// Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1, macro-F1, and for
/// segmentation the per-class IoU, mean IoU and pixel accuracy. Rows are true classes, columns predictions.
/// </summary>
public sealed class ConfusionMatrixMetrics
{
    private readonly long[,] _counts;

    /// <summary>An empty matrix over <paramref name="classNames"/>.</summary>
    public ConfusionMatrixMetrics(IReadOnlyList<string> classNames)
    {
        if (classNames.Count < 1) throw new ArgumentException("At least one class is needed.", nameof(classNames));
        ClassNames = classNames;
        _counts = new long[classNames.Count, classNames.Count];
    }

    /// <summary>Class names, by index.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Number of classes.</summary>
    public int NumClasses => ClassNames.Count;

    /// <summary>Count of examples of true class <paramref name="truth"/> predicted as <paramref name="predicted"/>.</summary>
    public long this[int truth, int predicted] => _counts[truth, predicted];

    /// <summary>Total examples counted.</summary>
    public long Total { get; private set; }

    /// <summary>Counts one example (or pixel); a truth equal to <paramref name="ignoreIndex"/> is skipped.</summary>
    public void Add(int truth, int predicted, int ignoreIndex = -1)
    {
        if (truth == ignoreIndex) return;
        if ((uint)truth >= (uint)NumClasses) throw new ArgumentOutOfRangeException(nameof(truth), $"label {truth} is not in 0..{NumClasses - 1}.");
        if ((uint)predicted >= (uint)NumClasses) throw new ArgumentOutOfRangeException(nameof(predicted), $"prediction {predicted} is not in 0..{NumClasses - 1}.");
        _counts[truth, predicted]++;
        Total++;
    }

    /// <summary>Counts every pixel of a label map against a prediction map of the same size.</summary>
    public void AddMaps(ReadOnlySpan<int> truth, ReadOnlySpan<int> predicted, int ignoreIndex = 255)
    {
        if (truth.Length != predicted.Length) throw new ArgumentException($"Label map has {truth.Length} pixels but the prediction has {predicted.Length}.");
        for (int i = 0; i < truth.Length; i++) Add(truth[i], predicted[i], ignoreIndex);
    }

    private long Row(int c) { long s = 0; for (int j = 0; j < NumClasses; j++) s += _counts[c, j]; return s; }
    private long Col(int c) { long s = 0; for (int i = 0; i < NumClasses; i++) s += _counts[i, c]; return s; }
    private long Diagonal() { long s = 0; for (int i = 0; i < NumClasses; i++) s += _counts[i, i]; return s; }

    /// <summary>Fraction of examples predicted correctly (pixel accuracy for segmentation).</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Diagonal() / Total;

    /// <summary>Precision of class <paramref name="c"/> (0 when nothing was predicted as it).</summary>
    public double Precision(int c) { long p = Col(c); return p == 0 ? 0 : (double)_counts[c, c] / p; }

    /// <summary>Recall of class <paramref name="c"/> (0 when it never occurs).</summary>
    public double Recall(int c) { long r = Row(c); return r == 0 ? 0 : (double)_counts[c, c] / r; }

    /// <summary>F1 of class <paramref name="c"/>.</summary>
    public double F1(int c) { double p = Precision(c), r = Recall(c); return p + r == 0 ? 0 : 2 * p * r / (p + r); }

    /// <summary>Unweighted mean of per-class F1 over classes that occur or are predicted.</summary>
    public double MacroF1 => PresentClasses().Select(F1).DefaultIfEmpty(0).Average();

    /// <summary>Intersection over union of class <paramref name="c"/>; NaN when it neither occurs nor is predicted.</summary>
    public double IoU(int c)
    {
        long union = Row(c) + Col(c) - _counts[c, c];
        return union == 0 ? double.NaN : (double)_counts[c, c] / union;
    }

    /// <summary>Mean IoU over classes that occur or are predicted (as mmseg's and HF evaluate's <c>mean_iou</c>, which skip NaN).</summary>
    public double MeanIoU => PresentClasses().Select(IoU).DefaultIfEmpty(0).Average();

    /// <summary>Mean per-class recall over classes that occur.</summary>
    public double MeanAccuracy => Enumerable.Range(0, NumClasses).Where(c => Row(c) > 0).Select(Recall).DefaultIfEmpty(0).Average();

    private IEnumerable<int> PresentClasses() => Enumerable.Range(0, NumClasses).Where(c => Row(c) + Col(c) > 0);

    /// <summary>The matrix as aligned text, with class names.</summary>
    public string ToText()
    {
        int w = Math.Max(6, ClassNames.Max(n => n.Length) + 1);
        var sb = new StringBuilder();
        sb.Append("truth \\ predicted".PadRight(w));
        for (int j = 0; j < NumClasses; j++) sb.Append(Short(ClassNames[j]).PadLeft(8));
        sb.AppendLine();
        for (int i = 0; i < NumClasses; i++)
        {
            sb.Append(ClassNames[i].PadRight(w));
            for (int j = 0; j < NumClasses; j++) sb.Append(_counts[i, j].ToString(CultureInfo.InvariantCulture).PadLeft(8));
            sb.AppendLine();
        }
        return sb.ToString();
    }

    private static string Short(string s) => s.Length <= 7 ? s : s[..7];
}
