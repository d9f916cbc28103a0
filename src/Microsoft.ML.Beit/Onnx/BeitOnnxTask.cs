namespace Microsoft.ML.Beit.Onnx;

/// <summary>The model an ONNX export computes, named after the Hugging Face class it reproduces.</summary>
public enum BeitOnnxTask
{
    /// <summary><c>BeitModel</c>: outputs <c>last_hidden_state [B, N+1, D]</c> and <c>pooler_output [B, D]</c>.</summary>
    Features,
    /// <summary><c>BeitForImageClassification</c>: outputs <c>logits [B, C]</c> and softmax <c>probabilities [B, C]</c>.</summary>
    ImageClassification,
    /// <summary>
    /// <c>BeitForSemanticSegmentation</c> (UperNet): outputs <c>logits [B, C, 4·H/P, 4·W/P]</c> (a quarter of the input
    /// resolution for patch size 16), and with
    /// <see cref="BeitOnnxExportOptions.SegmentationLabels"/> the full-resolution argmax <c>labels [B, H, W]</c> (int64).
    /// </summary>
    SemanticSegmentation,
    /// <summary>
    /// <c>BeitForMaskedImageModeling</c>: takes <c>bool_masked_pos [B, N]</c> as a second input and outputs
    /// <c>logits [B, N, vocab_size]</c> for every patch.
    /// </summary>
    MaskedImageModeling,
}
