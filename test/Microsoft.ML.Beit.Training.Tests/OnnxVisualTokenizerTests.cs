using Microsoft.ML.Beit.Training.Pretraining;
using static TorchSharp.torch;

namespace Beit.Tests;

public class OnnxVisualTokenizerTests
{
    private static string Model => Path.Combine(Fixtures.Root, "..", "tokenizer", "tiny_dvae_encoder.onnx");

    [Fact]
    public void TokensAreArgmaxOfCodebookLogitsOnLogitLaplaceMappedPixels()
    {
        using var scope = NewDisposeScope();
        using var tok = new OnnxVisualTokenizer(Model, new() { VocabSize = 8 });
        var pixels = rand([2, 3, 112, 112], generator: new Generator(3)) * 2 - 1; // model-normalised, mean/std 0.5
        var ids = tok.Tokenize(pixels, 8);
        Assert.Equal(new long[] { 2, 196 }, ids.shape);

        // The fixture's weights, by the formula in make_tiny_dvae.py.
        var w = new float[8 * 3 * 8 * 8];
        for (int k = 0; k < 8; k++) for (int c = 0; c < 3; c++) for (int y = 0; y < 8; y++) for (int x = 0; x < 8; x++)
            w[((k * 3 + c) * 8 + y) * 8 + x] = (float)(Math.Cos(0.7 * k + 0.3 * c + 0.88 * y + 0.05 * x) / 64.0);
        var mapped = (pixels * 0.5f + 0.5f) * 0.8f + 0.1f;
        var logits = nn.functional.conv2d(mapped, tensor(w, [8, 3, 8, 8]), strides: [8, 8]);
        var expected = logits.argmax(1).reshape(2, 196);
        Assert.Equal(expected.data<long>().ToArray(), ids.data<long>().ToArray());
    }

    [Fact]
    public void ResizesOtherResolutionsAndChecksTheTokenGrid()
    {
        using var scope = NewDisposeScope();
        using var tok = new OnnxVisualTokenizer(Model, new() { VocabSize = 8 });
        var pixels = zeros(1, 3, 224, 224);
        Assert.Equal(new long[] { 1, 196 }, tok.Tokenize(pixels, 16).shape); // 224/16 = 14 = the tokenizer's grid
        Assert.Throws<ArgumentException>(() => tok.Tokenize(zeros(1, 3, 64, 64), 8)); // 8×8 patches vs a 14×14 grid
    }

    [Fact]
    public void WrongNamesOrVocabGiveClearErrors()
    {
        var e = Assert.Throws<ArgumentException>(() => new OnnxVisualTokenizer(Model, new() { InputName = "pixels" }));
        Assert.Contains("expected input 'pixels'", e.Message);
        using var tok = new OnnxVisualTokenizer(Model, new() { VocabSize = 8192 });
        using var scope = NewDisposeScope();
        Assert.Throws<InvalidDataException>(() => tok.Tokenize(zeros(1, 3, 112, 112), 8));
        Assert.Throws<FileNotFoundException>(() => new OnnxVisualTokenizer("/nonexistent.onnx"));
    }
}
