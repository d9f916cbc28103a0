namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// Thrown when a <c>pytorch_model.bin</c> pickle asks for something a state dict never needs: a global outside the
/// allow-list (for example <c>os.system</c>), or an opcode that builds arbitrary objects. Nothing from the file is run.
/// </summary>
public sealed class UnsafePickleException : IOException
{
    /// <summary>Creates the exception for a refused global or opcode.</summary>
    /// <param name="refused">The refused global as <c>module.name</c>, or the opcode name.</param>
    /// <param name="message">The full message.</param>
    public UnsafePickleException(string refused, string message) : base(message)
    {
        Refused = refused;
    }

    /// <summary>What was refused: a global as <c>module.name</c>, or an opcode name such as <c>INST</c>.</summary>
    public string Refused { get; }
}
