using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// A pickle virtual machine that builds only plain data (None, bools, numbers, strings, bytes, tuples, lists, dicts)
/// plus what its caller allows by name: a few callables (evaluated by the caller's own code) and a few type globals
/// (used as values only). Any other global, and every opcode that instantiates arbitrary classes (INST, OBJ, NEWOBJ,
/// NEWOBJ_EX, EXT*), raises <see cref="UnsafePickleException"/>. This mirrors PyTorch's <c>weights_only=True</c> loader.
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>A global named by the pickle (<c>module.name</c>) that the allow-list accepted.</summary>
    internal sealed record Global(string Module, string Name)
    {
        public string FullName => Module + "." + Name;
        public override string ToString() => FullName;
    }

    /// <summary>A dict (also stands for <c>collections.OrderedDict</c>): insertion-ordered, tuple keys compared by value.</summary>
    internal sealed class PickleDict() : OrderedDictionary<object, object?>(StructuralComparer.Instance);

    private readonly byte[] _data;
    private readonly string _source;
    private readonly IReadOnlyDictionary<string, Func<object?[], object?>> _callables;
    private readonly IReadOnlySet<string> _typeGlobals;
    private readonly Func<object?, object?> _persistentLoad;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private int _pos;

    /// <param name="data">The pickle bytes.</param>
    /// <param name="source">Names the file in error messages.</param>
    /// <param name="callables">Allowed callables by <c>module.name</c>; REDUCE calls them with the argument tuple.</param>
    /// <param name="typeGlobals">Allowed non-callable globals (for example storage types used in persistent ids).</param>
    /// <param name="persistentLoad">Resolves BINPERSID ids.</param>
    public RestrictedUnpickler(byte[] data, string source, IReadOnlyDictionary<string, Func<object?[], object?>> callables,
        IReadOnlySet<string> typeGlobals, Func<object?, object?> persistentLoad)
    {
        _data = data;
        _source = source;
        _callables = callables;
        _typeGlobals = typeGlobals;
        _persistentLoad = persistentLoad;
    }

    /// <summary>Runs the pickle to its STOP opcode and returns the result.</summary>
    public object? Load()
    {
        var stack = _stack;
        var marks = _marks;
        stack.Clear();
        marks.Clear();
        var memo = new Dictionary<long, object?>();
        while (true)
        {
            int at = _pos;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: ReadByte(); break;                          // PROTO
                case 0x95: Read(8); break;                             // FRAME (length only; data is inline)
                case (byte)'.': return stack.Count == 1 ? stack[0] : throw Bad($"STOP with {stack.Count} values on the stack");
                case (byte)'(': marks.Push(stack.Count); break;        // MARK
                case (byte)'0': Pop(stack); break;                      // POP
                case (byte)'1': PopMark(stack, marks); break;           // POP_MARK
                case (byte)'2': stack.Add(Peek(stack)); break;          // DUP
                case (byte)'N': stack.Add(null); break;
                case 0x88: stack.Add(true); break;                     // NEWTRUE
                case 0x89: stack.Add(false); break;                    // NEWFALSE
                case (byte)'J': stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Read(4))); break;  // BININT
                case (byte)'K': stack.Add((long)ReadByte()); break;                                      // BININT1
                case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Read(2))); break; // BININT2
                case (byte)'I': stack.Add(ParseTextInt(ReadLine())); break;                               // INT
                case (byte)'L': stack.Add(Normalize(BigInteger.Parse(ReadLine().TrimEnd('L'), CultureInfo.InvariantCulture))); break; // LONG
                case 0x8a: stack.Add(ReadLong(ReadByte())); break;                                        // LONG1
                case 0x8b: stack.Add(ReadLong(ReadLength(4))); break;                                     // LONG4
                case (byte)'F': stack.Add(double.Parse(ReadLine(), CultureInfo.InvariantCulture)); break; // FLOAT
                case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Read(8))); break;          // BINFLOAT
                case (byte)'X': stack.Add(Encoding.UTF8.GetString(Read(ReadLength(4)))); break;           // BINUNICODE
                case 0x8c: stack.Add(Encoding.UTF8.GetString(Read(ReadByte()))); break;                   // SHORT_BINUNICODE
                case 0x8d: stack.Add(Encoding.UTF8.GetString(Read(ReadLength(8)))); break;                // BINUNICODE8
                case (byte)'V': stack.Add(ReadLine()); break;                                             // UNICODE (raw)
                case (byte)'T': stack.Add(Encoding.Latin1.GetString(Read(ReadLength(4)))); break;         // BINSTRING
                case (byte)'U': stack.Add(Encoding.Latin1.GetString(Read(ReadByte()))); break;            // SHORT_BINSTRING
                case (byte)'S': stack.Add(Unquote(ReadLine())); break;                                    // STRING
                case (byte)'B': stack.Add(Read(ReadLength(4)).ToArray()); break;                          // BINBYTES
                case (byte)'C': stack.Add(Read(ReadByte()).ToArray()); break;                             // SHORT_BINBYTES
                case 0x8e: stack.Add(Read(ReadLength(8)).ToArray()); break;                               // BINBYTES8
                case 0x96: stack.Add(Read(ReadLength(8)).ToArray()); break;                               // BYTEARRAY8
                case (byte)')': stack.Add(Array.Empty<object?>()); break;                                 // EMPTY_TUPLE
                case (byte)'t': stack.Add(PopMark(stack, marks).ToArray()); break;                        // TUPLE
                case 0x85: stack.Add(new[] { Pop(stack) }); break;                                        // TUPLE1
                case 0x86: { var b = Pop(stack); var a = Pop(stack); stack.Add(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(stack); var b = Pop(stack); var a = Pop(stack); stack.Add(new[] { a, b, c }); break; } // TUPLE3
                case (byte)']': stack.Add(new List<object?>()); break;                                    // EMPTY_LIST
                case (byte)'l': stack.Add(PopMark(stack, marks)); break;                                  // LIST
                case (byte)'a': { var v = Pop(stack); AsList(Peek(stack)).Add(v); break; }             // APPEND
                case (byte)'e': { var items = PopMark(stack, marks); AsList(Peek(stack)).AddRange(items); break; } // APPENDS
                case (byte)'}': stack.Add(new PickleDict()); break;                                       // EMPTY_DICT
                case (byte)'d': stack.Add(ToDict(PopMark(stack, marks))); break;                          // DICT
                case (byte)'s': { var v = Pop(stack); var k = Pop(stack); AsDict(Peek(stack))[Key(k)] = v; break; } // SETITEM
                case (byte)'u': { var items = PopMark(stack, marks); var d = AsDict(Peek(stack)); for (int i = 0; i + 1 < items.Count; i += 2) d[Key(items[i])] = items[i + 1]; break; } // SETITEMS
                case 0x8f: stack.Add(new List<object?>()); break;                                         // EMPTY_SET (as a list)
                case 0x90: { var items = PopMark(stack, marks); AsList(Peek(stack)).AddRange(items); break; } // ADDITEMS
                case 0x91: stack.Add(PopMark(stack, marks)); break;                                       // FROZENSET
                case (byte)'p': memo[long.Parse(ReadLine(), CultureInfo.InvariantCulture)] = Peek(stack); break; // PUT
                case (byte)'q': memo[ReadByte()] = Peek(stack); break;                                    // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Read(4))] = Peek(stack); break; // LONG_BINPUT
                case 0x94: memo[memo.Count] = Peek(stack); break;                                         // MEMOIZE
                case (byte)'g': stack.Add(Memo(memo, long.Parse(ReadLine(), CultureInfo.InvariantCulture))); break; // GET
                case (byte)'h': stack.Add(Memo(memo, ReadByte())); break;                                 // BINGET
                case (byte)'j': stack.Add(Memo(memo, BinaryPrimitives.ReadUInt32LittleEndian(Read(4)))); break; // LONG_BINGET
                case (byte)'c':                                                                            // GLOBAL
                {
                    string module = ReadLine(), name = ReadLine();
                    stack.Add(ResolveGlobal(module, name));
                    break;
                }
                case 0x93:                                                                                 // STACK_GLOBAL
                {
                    var name = Pop(stack) as string;
                    var module = Pop(stack) as string;
                    if (module is null || name is null) throw Bad("STACK_GLOBAL needs two strings");
                    stack.Add(ResolveGlobal(module, name));
                    break;
                }
                case (byte)'Q': stack.Add(_persistentLoad(Pop(stack))); break;                            // BINPERSID
                case (byte)'R':                                                                            // REDUCE
                {
                    var args = Pop(stack) as object?[] ?? throw Bad("REDUCE arguments are not a tuple");
                    var fn = Pop(stack);
                    if (fn is not Global g || !_callables.TryGetValue(g.FullName, out var call))
                        throw new UnsafePickleException(fn?.ToString() ?? "None",
                            $"'{_source}': the pickle calls '{fn}', which is not a state-dict rebuild function; refused.");
                    stack.Add(call(args));
                    break;
                }
                case (byte)'b':                                                                            // BUILD
                {
                    var state = Pop(stack);
                    // Only an OrderedDict's attribute dict (PyTorch stores state_dict._metadata this way) is accepted; it is dropped.
                    if (Peek(stack) is not PickleDict || state is not (PickleDict or null))
                        throw new UnsafePickleException("BUILD", $"'{_source}': the pickle sets state on a {Peek(stack)?.GetType().Name ?? "None"}; refused.");
                    break;
                }
                case (byte)'P': throw Refuse("PERSID");
                case (byte)'i': throw Refuse("INST");
                case (byte)'o': throw Refuse("OBJ");
                case 0x81: throw Refuse("NEWOBJ");
                case 0x92: throw Refuse("NEWOBJ_EX");
                case 0x82: case 0x83: case 0x84: throw Refuse("EXT");
                case 0x97: case 0x98: throw Refuse("out-of-band buffer");
                default: throw Bad($"unknown opcode 0x{op:x2} at byte {at}");
            }
        }
    }

    private Global ResolveGlobal(string module, string name)
    {
        string full = module + "." + name;
        if (_callables.ContainsKey(full) || _typeGlobals.Contains(full)) return new Global(module, name);
        throw new UnsafePickleException(full,
            $"'{_source}': the pickle names the global '{full}', which a state dict never needs; refused (only tensor rebuild functions, storage types and collections.OrderedDict are allowed).");
    }

    private UnsafePickleException Refuse(string opcode) =>
        new(opcode, $"'{_source}': the pickle uses opcode {opcode}, which can build arbitrary objects; refused.");

    private InvalidDataException Bad(string why) => new($"'{_source}': invalid pickle: {why}.");

    private byte ReadByte() => _pos < _data.Length ? _data[_pos++] : throw Bad("truncated");

    private ReadOnlySpan<byte> Read(int n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Bad("truncated");
        var s = _data.AsSpan(_pos, n);
        _pos += n;
        return s;
    }

    private int ReadLength(int bytes)
    {
        ulong n = bytes == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Read(4)) : BinaryPrimitives.ReadUInt64LittleEndian(Read(8));
        if (n > (ulong)(_data.Length - _pos)) throw Bad("a length runs past the end of the data");
        return (int)n;
    }

    private string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Bad("truncated line");
        var s = Encoding.UTF8.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    private object ReadLong(int n)
    {
        if (n == 0) return 0L;
        var v = new BigInteger(Read(n), isUnsigned: false, isBigEndian: false);
        return Normalize(v);
    }

    private static object Normalize(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? (long)v : v;

    private static object ParseTextInt(string s) => s switch
    {
        "00" => false,
        "01" => true,
        _ => long.Parse(s, CultureInfo.InvariantCulture),
    };

    private static string Unquote(string s) =>
        s.Length >= 2 && (s[0] == '\'' || s[0] == '"') && s[^1] == s[0] ? s[1..^1] : s;

    private object? Pop(List<object?> stack)
    {
        // Like CPython, never pop below the innermost mark.
        if (stack.Count == 0 || (_marks.Count > 0 && stack.Count <= _marks.Peek())) throw Bad("stack underflow");
        var v = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    private object? Peek(List<object?> stack) => stack.Count > 0 ? stack[^1] : throw Bad("stack underflow");

    private List<object?> PopMark(List<object?> stack, Stack<int> marks)
    {
        if (marks.Count == 0) throw Bad("no mark");
        int m = marks.Pop();
        if (m > stack.Count) throw Bad("mark above the stack");
        var items = stack.GetRange(m, stack.Count - m);
        stack.RemoveRange(m, stack.Count - m);
        return items;
    }

    private object? Memo(Dictionary<long, object?> memo, long key) =>
        memo.TryGetValue(key, out var v) ? v : throw Bad($"memo key {key} is missing");

    private List<object?> AsList(object? o) => o as List<object?> ?? throw Bad("APPEND on a non-list");

    private PickleDict AsDict(object? o) => o as PickleDict ?? throw Bad("SETITEM on a non-dict");

    private object Key(object? k) => k ?? throw Bad("None as a dict key is not supported");

    private PickleDict ToDict(List<object?> items)
    {
        var d = new PickleDict();
        for (int i = 0; i + 1 < items.Count; i += 2) d[Key(items[i])] = items[i + 1];
        return d;
    }

    /// <summary>Equality for dict keys: tuples (object arrays) by value, everything else by Equals.</summary>
    private sealed class StructuralComparer : IEqualityComparer<object>
    {
        public static readonly StructuralComparer Instance = new();

        public new bool Equals(object? x, object? y) =>
            x is object?[] a && y is object?[] b ? a.Length == b.Length && a.Zip(b).All(p => Equals(p.First, p.Second)) : object.Equals(x, y);

        public int GetHashCode(object o)
        {
            if (o is not object?[] a) return o.GetHashCode();
            var h = new HashCode();
            foreach (var e in a) h.Add(e is null ? 0 : GetHashCode(e));
            return h.ToHashCode();
        }
    }
}
