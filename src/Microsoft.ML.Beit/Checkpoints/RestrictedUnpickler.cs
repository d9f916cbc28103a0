using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Microsoft.ML.Beit.Checkpoints;

/// <summary>
/// A pickle virtual machine that builds only plain data (None, bools, numbers, strings, bytes, tuples, lists, dicts)
/// plus what its caller allows by name: a few callables (evaluated by the caller's own code) and a few type globals
/// (used as values only). Any other global, and every opcode that instantiates arbitrary classes (INST, OBJ, NEWOBJ,
/// NEWOBJ_EX, EXT*), raises <see cref="UnsafePickleException"/>. This mirrors PyTorch's <c>weights_only=True</c> loader.
/// The machine is a loop, never a recursion, and its work and memory are bounded by <see cref="BeitLimits"/> (values,
/// memo entries, containers, tuple depth, integer width), so a few hundred hostile bytes cannot exhaust the process.
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
    // Nesting depth of every tuple built, by reference: tuples are immutable, so the depth is exact and bounded as it is built.
    private readonly Dictionary<object?[], int> _tupleDepth = new(ReferenceEqualityComparer.Instance);
    private int _pos;
    private int _values, _containers;

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
        int lastCount = 0;
        while (true)
        {
            // Every value enters through a net push of some opcode, so summing the growth bounds all values built.
            if (stack.Count > lastCount && (_values += stack.Count - lastCount) > BeitLimits.MaxPickleValues)
                throw Bad($"more than {BeitLimits.MaxPickleValues} values");
            lastCount = stack.Count;
            if (memo.Count > BeitLimits.MaxPickleMemo) throw Bad($"more than {BeitLimits.MaxPickleMemo} memo entries");
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
                case (byte)'I': stack.Add(ParseTextInt(ReadIntegerLine("INT"))); break;                     // INT
                case (byte)'L': stack.Add(ParseLong(ReadIntegerLine("LONG").TrimEnd('L'), "LONG")); break;  // LONG
                case 0x8a: stack.Add(ReadLong(ReadByte(), "LONG1")); break;                               // LONG1
                case 0x8b: stack.Add(ReadLong(ReadLength(4), "LONG4")); break;                            // LONG4
                case (byte)'F': stack.Add(ParseFloat(ReadLine())); break;                                 // FLOAT
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
                case (byte)'t': stack.Add(Tuple(PopMark(stack, marks).ToArray())); break;                 // TUPLE
                case 0x85: stack.Add(Tuple([Pop(stack)])); break;                                         // TUPLE1
                case 0x86: { var b = Pop(stack); var a = Pop(stack); stack.Add(Tuple([a, b])); break; }   // TUPLE2
                case 0x87: { var c = Pop(stack); var b = Pop(stack); var a = Pop(stack); stack.Add(Tuple([a, b, c])); break; } // TUPLE3
                case (byte)']': stack.Add(Container(new List<object?>())); break;                         // EMPTY_LIST
                case (byte)'l': stack.Add(Container(PopMark(stack, marks))); break;                       // LIST
                case (byte)'a': { var v = Pop(stack); AsList(Peek(stack)).Add(v); break; }             // APPEND
                case (byte)'e': { var items = PopMark(stack, marks); AsList(Peek(stack)).AddRange(items); break; } // APPENDS
                case (byte)'}': stack.Add(Container(new PickleDict())); break;                            // EMPTY_DICT
                case (byte)'d': stack.Add(Container(ToDict(PopMark(stack, marks)))); break;               // DICT
                case (byte)'s': { var v = Pop(stack); var k = Pop(stack); AsDict(Peek(stack))[Key(k)] = v; break; } // SETITEM
                case (byte)'u': { var items = PopMark(stack, marks); var d = AsDict(Peek(stack)); for (int i = 0; i + 1 < items.Count; i += 2) d[Key(items[i])] = items[i + 1]; break; } // SETITEMS
                case 0x8f: stack.Add(Container(new List<object?>())); break;                              // EMPTY_SET (as a list)
                case 0x90: { var items = PopMark(stack, marks); AsList(Peek(stack)).AddRange(items); break; } // ADDITEMS
                case 0x91: stack.Add(Container(PopMark(stack, marks))); break;                            // FROZENSET
                case (byte)'p': memo[ParseLong(ReadIntegerLine("PUT"), "PUT")] = Peek(stack); break;        // PUT
                case (byte)'q': memo[ReadByte()] = Peek(stack); break;                                    // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Read(4))] = Peek(stack); break; // LONG_BINPUT
                case 0x94: memo[memo.Count] = Peek(stack); break;                                         // MEMOIZE
                case (byte)'g': stack.Add(Memo(memo, ParseLong(ReadIntegerLine("GET"), "GET"))); break;      // GET
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
                    var result = call(args);
                    stack.Add(result is PickleDict or List<object?> or object?[] ? Container(result) : result);
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

    /// <summary>
    /// LONG1/LONG4: a little-endian two's-complement integer of <paramref name="n"/> bytes. Anything wider than 64 bits
    /// is refused before it is decoded: no tensor size, stride or offset needs it, and arbitrary precision would cost
    /// quadratic time on a huge literal.
    /// </summary>
    private long ReadLong(int n, string opcode)
    {
        if (n > BeitLimits.MaxPickleIntegerBytes) throw Bad($"{opcode} integer of {n} bytes; at most {BeitLimits.MaxPickleIntegerBytes} are accepted");
        var bytes = Read(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) v = (v << 8) | bytes[i];
        // Sign-extend from the top byte written.
        if (n is > 0 and < 8 && (bytes[n - 1] & 0x80) != 0) v |= -1L << (8 * n);
        return v;
    }

    /// <summary>The text line of an INT, LONG, PUT or GET opcode, refused when longer than any 64-bit integer.</summary>
    private string ReadIntegerLine(string opcode)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos, Math.Min(_data.Length - _pos, BeitLimits.MaxPickleIntegerDigits + 2));
        if (end < 0)
        {
            if (Array.IndexOf(_data, (byte)'\n', _pos) < 0) throw Bad("truncated line");
            throw Bad($"{opcode} literal longer than {BeitLimits.MaxPickleIntegerDigits + 1} characters");
        }
        return ReadLine();
    }

    private long ParseLong(string s, string opcode) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? v : throw Bad($"{opcode} literal '{s}' is not a 64-bit integer");

    private object ParseTextInt(string s) => s switch
    {
        "00" => false,
        "01" => true,
        _ => ParseLong(s, "INT"),
    };

    private double ParseFloat(string s) =>
        s.Length <= 64 && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : throw Bad("FLOAT literal is not a number");

    private T Container<T>(T container)
    {
        if (++_containers > BeitLimits.MaxPickleContainers) throw Bad($"more than {BeitLimits.MaxPickleContainers} containers");
        return container;
    }

    private object?[] Tuple(object?[] items)
    {
        Container(items);
        int depth = 1;
        foreach (var item in items)
        {
            if (item is object?[] inner) depth = Math.Max(depth, (_tupleDepth.TryGetValue(inner, out int d) ? d : 1) + 1);
        }
        if (depth > BeitLimits.MaxPickleNesting) throw Bad($"tuples nested more than {BeitLimits.MaxPickleNesting} deep");
        if (depth > 1) _tupleDepth[items] = depth;
        return items;
    }

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

    /// <summary>
    /// Dict keys are scalars or flat tuples of scalars (a state dict's are strings). Refusing nested keys keeps hashing
    /// and comparing keys O(1), however the pickle shares tuples through its memo.
    /// </summary>
    private object Key(object? k) => k switch
    {
        null => throw Bad("None as a dict key is not supported"),
        object?[] t when t.All(IsScalar) => t,
        _ when IsScalar(k) => k,
        _ => throw Bad($"a dict key of type {Describe(k)} is not supported"),
    };

    private static bool IsScalar(object? o) => o is null or string or long or bool or double or Global;

    private PickleDict ToDict(List<object?> items)
    {
        var d = new PickleDict();
        for (int i = 0; i + 1 < items.Count; i += 2) d[Key(items[i])] = items[i + 1];
        return d;
    }

    /// <summary>
    /// A short description of a pickled value for error messages: at most three levels and eight items per level, so
    /// a deep or memo-shared value (a DAG whose full expansion is exponential) still describes in constant time.
    /// </summary>
    internal static string Describe(object? o) => Describe(o, 3);

    private static string Describe(object? o, int levels) => o switch
    {
        null => "None",
        string s => s.Length <= 64 ? $"'{s}'" : $"'{s[..64]}…'",
        object?[] t when levels == 0 => $"({t.Length} items)",
        object?[] t => "(" + string.Join(", ", t.Take(8).Select(x => Describe(x, levels - 1))) + (t.Length > 8 ? ", …" : "") + ")",
        long or bool or double or Global => Convert.ToString(o, CultureInfo.InvariantCulture)!,
        _ => o.GetType().Name,
    };

    /// <summary>Equality for dict keys: tuples (object arrays) by value, everything else by Equals.</summary>
    private sealed class StructuralComparer : IEqualityComparer<object>
    {
        public static readonly StructuralComparer Instance = new();

        // Keys are scalars or flat tuples of scalars (see Key), so neither method recurses.
        public new bool Equals(object? x, object? y) =>
            x is object?[] a && y is object?[] b ? a.Length == b.Length && a.Zip(b).All(p => object.Equals(p.First, p.Second)) : object.Equals(x, y);

        public int GetHashCode(object o)
        {
            if (o is not object?[] a) return o.GetHashCode();
            var h = new HashCode();
            foreach (var e in a) h.Add(e);
            return h.ToHashCode();
        }
    }
}
