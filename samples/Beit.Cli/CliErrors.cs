using System.CommandLine;
using Microsoft.ML.Beit.Checkpoints;
using Microsoft.ML.Beit.Estimators;
using Microsoft.ML.Beit.Processing;

namespace Beit.Cli;

/// <summary>
/// The one place the CLI turns an exception into its exit: an expected failure (bad input, unreadable or unwritable
/// file, invalid model or checkpoint) is one line, <c>beit &lt;command&gt;: &lt;reason&gt;</c>, on stderr and exit code 1;
/// cancellation is exit code 130 (as a shell reports SIGINT); anything else is a bug: one line saying so and exit code
/// 70, with the stack trace only under <c>--verbose</c>.
/// </summary>
internal static class CliErrors
{
    public const int Failed = 1, Bug = 70, Cancelled = 130;

    /// <summary>The global <c>--verbose</c> flag: stack traces for unexpected errors.</summary>
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print the stack trace of an unexpected error.", Recursive = true };

    /// <summary>The exception a user can act on, if <paramref name="e"/> is or wraps one (ML.NET wraps errors raised on its worker threads).</summary>
    public static Exception? Expected(Exception e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
            if (x is BeitInputException or ImageDecodingException or CheckpointMismatchException or UnsafePickleException or InvalidDataException
                or Microsoft.ML.Beit.Scoring.BeitOnnxRuntimeMissingException) return x;
        return e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException ? e : null;
    }

    public static int Report(ParseResult parsed, Exception e)
    {
        string command = "beit " + parsed.CommandResult.Command.Name;
        if (e is OperationCanceledException || e.InnerException is OperationCanceledException)
        {
            Console.Error.WriteLine($"{command}: cancelled.");
            return Cancelled;
        }
        if (Expected(e) is { } expected)
        {
            Console.Error.WriteLine($"{command}: {OneLine(expected.Message)}");
            if (parsed.GetValue(Verbose)) Console.Error.WriteLine(e);
            return Failed;
        }
        Console.Error.WriteLine($"{command}: unexpected error (a bug; please report it): {e.GetType().Name}: {OneLine(e.Message)}");
        Console.Error.WriteLine(parsed.GetValue(Verbose) ? e.ToString() : "Run again with --verbose for the stack trace.");
        return Bug;
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
