using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Beit.Training.Pretraining;

/// <summary>
/// A user-supplied ONNX visual tokenizer, for example the DALL·E dVAE encoder exported to ONNX. It is fed BEiT's
/// "second view" (by default 112×112 with DALL·E's logit-laplace pixel mapping <c>0.8·x + 0.1</c>), and a patch's
/// token is the argmax over the model's codebook logits <c>[B, vocab, Gh, Gw]</c>.
/// </summary>
public sealed class OnnxVisualTokenizer : IBeitVisualTokenizer, IDisposable
{
    /// <summary>How pixels in [0, 1] are mapped before the tokenizer sees them.</summary>
    public enum PixelMapping
    {
        /// <summary>DALL·E's logit-laplace mapping: <c>(1 − 2ε)·x + ε</c> with ε = 0.1.</summary>
        LogitLaplace,
        /// <summary>Pixels in [0, 1] as they are.</summary>
        UnitRange,
    }

    /// <summary>Settings of an ONNX tokenizer.</summary>
    public sealed class Options
    {
        /// <summary>Name of the image input.</summary>
        public string InputName { get; set; } = "x";
        /// <summary>Name of the codebook-logits output <c>[B, vocab, Gh, Gw]</c>.</summary>
        public string OutputName { get; set; } = "logits";
        /// <summary>Codebook size; checked against the model's output.</summary>
        public int VocabSize { get; set; } = 8192;
        /// <summary>Side of the square image the tokenizer takes.</summary>
        public int InputSize { get; set; } = 112;
        /// <summary>Pixel mapping applied to [0, 1] pixels.</summary>
        public PixelMapping Mapping { get; set; } = PixelMapping.LogitLaplace;
        /// <summary>Mean used to normalise the BEiT view (undone before mapping).</summary>
        public float ImageMean { get; set; } = 0.5f;
        /// <summary>Standard deviation used to normalise the BEiT view.</summary>
        public float ImageStd { get; set; } = 0.5f;
    }

    private readonly InferenceSession _session;
    private readonly Options _options;

    /// <summary>Opens the ONNX tokenizer at <paramref name="modelPath"/>; the input and output names must exist.</summary>
    public OnnxVisualTokenizer(string modelPath, Options? options = null)
    {
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"Tokenizer model '{modelPath}' not found.", modelPath);
        _options = options ?? new Options();
        try
        {
            _session = new InferenceSession(modelPath);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"'{modelPath}' is not a loadable ONNX model: {e.Message}", e);
        }
        if (!_session.InputMetadata.ContainsKey(_options.InputName) || !_session.OutputMetadata.ContainsKey(_options.OutputName))
        {
            _session.Dispose();
            throw new ArgumentException($"Tokenizer '{modelPath}' has inputs [{string.Join(", ", _session.InputMetadata.Keys)}] and outputs " +
                $"[{string.Join(", ", _session.OutputMetadata.Keys)}]; expected input '{_options.InputName}' and output '{_options.OutputName}'.");
        }
    }

    /// <inheritdoc />
    public int VocabSize => _options.VocabSize;

    /// <inheritdoc />
    public Tensor Tokenize(Tensor pixelValues, int patchSize)
    {
        using var scope = NewDisposeScope();
        long b = pixelValues.shape[0];
        long gridTokens = (pixelValues.shape[2] / patchSize) * (pixelValues.shape[3] / patchSize);
        var x = (pixelValues.detach().to(float32).cpu() * _options.ImageStd + _options.ImageMean);
        int s = _options.InputSize;
        if (x.shape[2] != s || x.shape[3] != s)
            x = nn.functional.interpolate(x, [s, s], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
        x = x.clamp(0, 1);
        if (_options.Mapping == PixelMapping.LogitLaplace) x = x * 0.8f + 0.1f;
        x = x.contiguous();

        var input = x.data<float>().ToArray();
        using var inputValue = OrtValue.CreateTensorValueFromMemory(input, [b, 3, s, s]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, [_options.InputName], [inputValue], [_options.OutputName]);
        var shape = outputs[0].GetTensorTypeAndShape().Shape;
        if (shape.Length != 4 || shape[1] != _options.VocabSize)
            throw new InvalidDataException($"Tokenizer output '{_options.OutputName}' has shape [{string.Join(",", shape)}]; expected [B, {_options.VocabSize}, Gh, Gw].");
        if (shape[2] * shape[3] != gridTokens)
            throw new ArgumentException($"Tokenizer gives a {shape[2]}×{shape[3]} token grid but the model has {gridTokens} patches.");
        var logits = tensor(outputs[0].GetTensorDataAsSpan<float>().ToArray(), shape);
        return logits.argmax(1).reshape(b, gridTokens).to(pixelValues.device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();
}
