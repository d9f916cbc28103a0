using Beit.Tests.Safety;
using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Processing;
using Xunit.Abstractions;

namespace Beit.Tests.Hostile;

/// <summary>
/// Checkpoint files that are not regular files: a <c>config.json</c> FIFO would block its reader forever and a weights
/// file linked to <c>/dev/zero</c> would be read until the process runs out of memory. Each is refused at once, as an
/// <see cref="InvalidDataException"/> that names the file.
/// </summary>
public sealed class NonRegularCheckpointFileTests(ITestOutputHelper log)
{
    /// <summary>A copy of the tiny classification checkpoint whose <paramref name="file"/> is replaced by <paramref name="make"/>.</summary>
    private static string CheckpointWith(string dir, string file, Action<string> make)
    {
        foreach (var f in Directory.GetFiles(Fixtures.Tiny("cls_relpos")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        string path = Path.Combine(dir, file);
        File.Delete(path);
        make(path);
        return path;
    }

    [Fact]
    public void ConfigFifoIsRefused()
    {
        using var dir = new TempDir();
        string config = CheckpointWith(dir, BeitConfig.FileName, NonRegularFileTests.MakeFifo);
        Bounded.Throws<InvalidDataException>(log, () => BeitConfig.Load(dir), config, "FIFO");
        Bounded.Throws<InvalidDataException>(log, () => BeitCheckpoint.Load(dir), config, "FIFO");
    }

    [Fact]
    public void WeightsLinkedToDevZeroAreRefused()
    {
        using var dir = new TempDir();
        string weights = CheckpointWith(dir, SafeTensors.ModelFileName, p => File.CreateSymbolicLink(p, "/dev/zero"));
        Bounded.Throws<InvalidDataException>(log, () => BeitCheckpoint.ReadTensors(dir), weights, "character device");
        Bounded.Throws<InvalidDataException>(log, () => SafeTensors.Read(weights), weights);
    }

    [Fact]
    public void PyTorchWeightsAndPreprocessorConfigFifosAreRefused()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.Tiny("cls_relpos_bin")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        string bin = Path.Combine(dir, PyTorchCheckpoint.ModelFileName);
        File.Delete(bin);
        NonRegularFileTests.MakeFifo(bin);
        Bounded.Throws<InvalidDataException>(log, () => BeitCheckpoint.ReadTensors(dir), bin, "FIFO");

        string processor = Path.Combine(dir, BeitImageProcessor.ConfigFileName);
        NonRegularFileTests.MakeFifo(processor);
        Bounded.Throws<InvalidDataException>(log, () => BeitImageProcessor.FromPretrained(dir), processor, "FIFO");
    }

    [Fact]
    public void OnnxFileLinkedToDevZeroIsRefused()
    {
        using var dir = new TempDir();
        string onnx = Path.Combine(dir, "model.onnx");
        File.CreateSymbolicLink(onnx, "/dev/zero");
        var ml = new MLContext();
        Bounded.Throws<InvalidDataException>(log, () => ml.Transforms.BeitClassifier(onnx).Fit(
            ml.Data.LoadFromEnumerable(Array.Empty<Row>())), onnx, "character device");
    }

    private sealed class Row
    {
        [Microsoft.ML.Data.VectorType(3, 4, 4)]
        public float[] PixelValues { get; set; } = [];
    }
}
