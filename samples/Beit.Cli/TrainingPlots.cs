using Microsoft.ML.Beit.Evaluation;
using Microsoft.ML.Beit.IO;
using Microsoft.ML.Beit.Training;
using OxyPlot;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;

namespace Beit.Cli;

/// <summary>PNG charts of a training run: loss and validation curves per epoch, and the confusion matrix.</summary>
internal static class TrainingPlots
{
    public static void Curves(IReadOnlyList<BeitEpochMetrics> history, string metricName, Func<BeitEpochMetrics, double> metric, string path)
    {
        var model = new PlotModel { Title = "Training curves", Background = OxyColors.White };
        model.Legends.Add(new Legend { LegendPosition = LegendPosition.RightMiddle, LegendPlacement = LegendPlacement.Outside });
        model.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "epoch", Minimum = 1, MajorStep = Math.Max(1, history.Count / 10) });
        model.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "loss", Key = "loss", MajorGridlineStyle = LineStyle.Dot });
        model.Axes.Add(new LinearAxis { Position = AxisPosition.Right, Title = metricName, Key = "metric", Minimum = 0, Maximum = 1 });
        var train = new LineSeries { Title = "train loss", YAxisKey = "loss", MarkerType = MarkerType.Circle };
        var valid = new LineSeries { Title = "validation loss", YAxisKey = "loss", MarkerType = MarkerType.Square, LineStyle = LineStyle.Dash };
        var score = new LineSeries { Title = metricName, YAxisKey = "metric", MarkerType = MarkerType.Diamond, Color = OxyColors.SeaGreen };
        foreach (var h in history)
        {
            train.Points.Add(new DataPoint(h.Epoch, h.TrainLoss));
            if (!double.IsNaN(h.ValidationLoss)) valid.Points.Add(new DataPoint(h.Epoch, h.ValidationLoss));
            if (!double.IsNaN(metric(h))) score.Points.Add(new DataPoint(h.Epoch, metric(h)));
        }
        model.Series.Add(train);
        if (valid.Points.Count > 0) model.Series.Add(valid);
        if (score.Points.Count > 0) model.Series.Add(score);
        Export(model, path, 900, 500);
    }

    /// <summary>
    /// The search's trials: validation accuracy against the time each trial was given, one marker per trial (kept
    /// filled, pruned hollow), labelled with the setting.
    /// </summary>
    public static void Search(Microsoft.ML.Beit.Training.ImageClassification.BeitSearchReport search, string path)
    {
        var model = new PlotModel { Title = $"Search: {search.Trials.Count} trials in a {search.Budget:mm\\:ss} budget; winner {search.Winner}", TitleFontSize = 12, Background = OxyColors.White };
        model.Legends.Add(new Legend { LegendPosition = LegendPosition.BottomRight });
        model.Axes.Add(new LogarithmicAxis { Position = AxisPosition.Bottom, Title = "trial budget (s)" });
        model.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "validation accuracy", Minimum = 0, Maximum = 1, MajorGridlineStyle = LineStyle.Dot });
        var kept = new ScatterSeries { Title = "kept", MarkerType = MarkerType.Circle, MarkerFill = OxyColors.SeaGreen, MarkerSize = 5 };
        var pruned = new ScatterSeries { Title = "pruned", MarkerType = MarkerType.Circle, MarkerFill = OxyColors.Undefined, MarkerStroke = OxyColors.IndianRed, MarkerStrokeThickness = 1.5, MarkerSize = 5 };
        foreach (var t in search.Trials)
        {
            if (double.IsNaN(t.ValidationAccuracy)) continue;
            (t.Kept ? kept : pruned).Points.Add(new ScatterPoint(t.Budget.TotalSeconds, t.ValidationAccuracy));
            model.Annotations.Add(new OxyPlot.Annotations.TextAnnotation
            {
                Text = t.Name, TextPosition = new DataPoint(t.Budget.TotalSeconds, t.ValidationAccuracy), FontSize = 9,
                TextHorizontalAlignment = HorizontalAlignment.Left, TextVerticalAlignment = VerticalAlignment.Bottom, Stroke = OxyColors.Transparent,
            });
        }
        model.Series.Add(kept);
        model.Series.Add(pruned);
        Export(model, path, 1000, 560);
    }

    public static void ConfusionMatrix(ConfusionMatrixMetrics cm, string path)
    {
        int n = cm.NumClasses;
        var model = new PlotModel { Title = $"Confusion matrix (accuracy {cm.Accuracy:P1})", Background = OxyColors.White };
        var names = cm.ClassNames.ToArray();
        model.Axes.Add(new CategoryAxis { Position = AxisPosition.Bottom, Title = "predicted", ItemsSource = names, Angle = n > 6 ? -45 : 0 });
        model.Axes.Add(new CategoryAxis { Position = AxisPosition.Left, Title = "true", ItemsSource = names.Reverse().ToArray() });
        model.Axes.Add(new LinearColorAxis { Position = AxisPosition.Right, Palette = OxyPalette.Interpolate(200, OxyColors.White, OxyColors.SteelBlue, OxyColors.Navy), Minimum = 0 });
        var data = new double[n, n];
        for (int t = 0; t < n; t++)
        {
            long row = Enumerable.Range(0, n).Sum(p => cm[t, p]);
            for (int p = 0; p < n; p++) data[p, n - 1 - t] = row == 0 ? 0 : (double)cm[t, p] / row; // row-normalised
        }
        model.Series.Add(new HeatMapSeries
        {
            X0 = 0, X1 = n - 1, Y0 = 0, Y1 = n - 1, Data = data, RenderMethod = HeatMapRenderMethod.Rectangles,
            LabelFormatString = "0.00", LabelFontSize = n > 12 ? 0 : 0.25,
        });
        Export(model, path, Math.Max(480, 200 + 60 * n), Math.Max(400, 160 + 60 * n));
    }

    private static void Export(PlotModel model, string path, int width, int height) =>
        AtomicFile.Write(path, tmp =>
        {
            using var stream = File.Create(tmp);
            new OxyPlot.SkiaSharp.PngExporter { Width = width, Height = height }.Export(model, stream);
        });
}
