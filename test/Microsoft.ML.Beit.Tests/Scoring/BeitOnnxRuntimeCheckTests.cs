using Microsoft.ML;
using Microsoft.ML.Beit;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Scoring;

namespace Beit.Tests.Scoring;

/// <summary>
/// Every ONNX Runtime entry point checks for the native library before any work, and says which package to add.
/// The missing library is simulated for this test's async flow only (<see cref="BeitOnnxRuntime.ProbeOverride"/>);
/// the packed-package test in <c>.ci/package-install-test</c> checks a real application without the package.
/// </summary>
public sealed class BeitOnnxRuntimeCheckTests
{
    [Fact]
    public void TheRealProbeFindsThePackageThisTestReferences() => Assert.True(BeitOnnxRuntime.IsAvailable);

    [Fact]
    public void EveryEntryPointFailsFirstNamingThePackage()
    {
        var ml = new MLContext();
        string checkpoint = Fixtures.Tiny("cls_relpos");
        BeitOnnxRuntime.ProbeOverride = () => false;
        try
        {
            var entryPoints = new (string Name, Action Run)[]
            {
                ("BeitClassifier", () => ml.Transforms.BeitClassifier(checkpoint)),
                ("BeitFeaturizer", () => ml.Transforms.BeitFeaturizer(checkpoint)),
                ("BeitSegmenter", () => ml.Transforms.BeitSegmenter(checkpoint)),
                ("BeitModelZip.Load", () => BeitModelZip.Load(ml, "/nonexistent/model.zip", out _)),
                ("BeitOnnxSession", () => new BeitOnnxSession([1, 2, 3]).Dispose()),
            };
            foreach (var (name, run) in entryPoints)
            {
                // The check comes before argument and file checks: a missing file is not reported, the runtime is.
                var e = Assert.Throws<BeitOnnxRuntimeMissingException>(run);
                Assert.Equal(name, e.EntryPoint);
                Assert.StartsWith(name + ": ONNX Runtime's native library (onnxruntime) is not part of this application.", e.Message);
                Assert.Contains("dotnet add package Microsoft.ML.OnnxRuntime'", e.Message);
                Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu --version 1.31.0", e.Message);
            }
        }
        finally
        {
            BeitOnnxRuntime.ProbeOverride = null;
        }
        // And the override was local to this flow: the real answer is back.
        Assert.True(BeitOnnxRuntime.IsAvailable);
    }
}
