using Microsoft.ML.Beit.Processing;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Cli.Serving;

/// <summary>One class in a segmentation answer.</summary>
/// <param name="ClassId">The class index (the label map's value).</param>
/// <param name="Label">The class name.</param>
/// <param name="Pixels">How many pixels carry it.</param>
/// <param name="Fraction">Its share of the image's pixels.</param>
/// <param name="Color">Its colour in the overlay and the label-map PNG's palette, <c>#rrggbb</c>.</param>
internal sealed record SegmentClass(int ClassId, string Label, long Pixels, double Fraction, string Color);

/// <summary><c>POST /v1/segment</c> as JSON: the map's (height, width) and the classes present, most pixels first.</summary>
internal sealed record SegmentResponse(BeitServer.Size Size, IReadOnlyList<SegmentClass> Classes);

/// <summary>The segmentation answers of the server, drawn by the library's <see cref="BeitSegmentationRendering"/>.</summary>
internal static class SegmentationImages
{
    public static SegmentResponse Summary(BeitSegmentation result, IReadOnlyList<string> labels) =>
        new(new BeitServer.Size(result.Size.Height, result.Size.Width),
            BeitSegmentationRendering.ClassFractions(result.Labels, labels)
                .Select(c => new SegmentClass(c.ClassId, c.Label, c.Pixels, c.Fraction, Hex(BeitSegmentationRendering.ClassColor(c.ClassId)))).ToList());

    /// <summary>The label map as a PNG whose pixel values are the class ids (palette PNG up to 256 classes).</summary>
    public static byte[] LabelMapPng(BeitSegmentation result, int classCount) =>
        BeitSegmentationRendering.LabelMapPng(result.Labels, result.Size, classCount);

    /// <summary>The image with the class colours blended over it at the library's default opacity.</summary>
    public static byte[] OverlayPng(BeitSegmentation result) =>
        BeitSegmentationRendering.OverlayPng(result.Labels, result.Size, result.Image.Height == result.Size.Height && result.Image.Width == result.Size.Width ? result.Image : null);

    private static string Hex((byte R, byte G, byte B) c) => $"#{c.R:x2}{c.G:x2}{c.B:x2}";
}
