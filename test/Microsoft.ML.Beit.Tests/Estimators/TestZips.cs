using System.IO.Compression;
using System.Text;
using Microsoft.ML;

namespace Beit.Tests.Estimators;

/// <summary>model.zip helpers shared by the library tests and the CLI tests.</summary>
internal static class TestZips
{
    /// <summary>A small classification model.zip (paths → scores) from the tiny fixture.</summary>
    internal static string TinyZip(string dir, string name = "model.zip")
    {
        var ml = new MLContext();
        var data = PipelineData.Paths(ml, []);
        string zip = Path.Combine(dir, name);
        using var model = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("cls_relpos")))
            .Append(ml.Transforms.BeitClassifier(Fixtures.Tiny("cls_relpos")))
            .Fit(data);
        ml.Model.Save(model, data.Schema, zip);
        return zip;
    }

    /// <summary>The zip embeds the ONNX model and names no absolute path (of the fixtures, the temp folder, the repository).</summary>
    /// <summary>A segmentation <c>model.zip</c> (image paths → the tiny UperNet segmenter).</summary>
    internal static string SegmentationZip(string dir)
    {
        var ml = new MLContext();
        var data = PipelineData.Paths(ml, []);
        string zip = Path.Combine(dir, "seg.zip");
        using var model = ml.Transforms.LoadBeitImages()
            .Append(ml.Transforms.BeitImageProcessor(Fixtures.Tiny("seg_uper")))
            .Append(ml.Transforms.BeitSegmenter(Fixtures.Tiny("seg_uper")))
            .Fit(data);
        ml.Model.Save(model, data.Schema, zip);
        return zip;
    }

    internal static void AssertZipIsSelfContained(string zip, string tempDir)
    {
        using var archive = ZipFile.OpenRead(zip);
        Assert.Contains(archive.Entries, e => e.FullName.EndsWith("OnnxModel", StringComparison.Ordinal) && e.Length > 10_000);
        string[] forbidden = [Fixtures.Root, tempDir, Path.GetTempPath().TrimEnd('/'), AppContext.BaseDirectory.TrimEnd('/'), "/work/", "/home/", "/tmp/"];
        foreach (var entry in archive.Entries)
        {
            using var stream = entry.Open();
            using var ms = new MemoryStream();
            stream.CopyTo(ms);
            // Both encodings ML.NET uses for strings: UTF-8 and UTF-16.
            string utf8 = Encoding.UTF8.GetString(ms.ToArray()), utf16 = Encoding.Unicode.GetString(ms.ToArray());
            foreach (var path in forbidden)
            {
                Assert.DoesNotContain(path, utf8);
                Assert.DoesNotContain(path, utf16);
            }
        }
    }

}
