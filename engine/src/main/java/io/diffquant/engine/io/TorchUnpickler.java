package io.diffquant.engine.io;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A restricted unpickler for the {@code data.pkl} of {@code torch.save} state_dicts (opcodes: CPython
 * Lib/pickletools.py; object protocol: torch/serialization.py and torch/_utils.py {@code _rebuild_tensor_v2}).
 * It never imports or calls anything: the few globals a state_dict needs are recognised by name and interpreted here
 * ({@code collections.OrderedDict}, {@code torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter},
 * the {@code torch.*Storage} types of persistent ids, {@code torch.Size}, and {@code argparse.Namespace} kept as an
 * inert record for DiT's training checkpoints). Any other global, and any opcode outside the protocol 0-4 data
 * subset, is refused with the file, the position and the opcode or class name.
 */
final class TorchUnpickler {
    /** A Python tuple. */
    record PyTuple(List<Object> items) {}

    /** An allowed global (a name only: nothing is ever imported). */
    record PyGlobal(String module, String name) {
        String qualified() { return module + "." + name; }
    }

    /** A storage from a persistent id: the zip entry {@code data/<key>}, its dtype and element count. */
    record StorageRef(String key, DType dtype, long numel) {}

    /** A tensor view of a storage (PyTorch's storage_offset, size and stride, in elements). */
    record TensorRef(StorageRef storage, long offset, long[] shape, long[] stride) {}

    /** An inert object of an allowed plain-data class (argparse.Namespace): its class and BUILD state. */
    static final class Opaque {
        final String cls;
        Object state;
        Opaque(String cls) { this.cls = cls; }
        @Override public String toString() { return cls + (state == null ? "()" : "(" + state + ")"); }
    }

    static final Map<String, DType> STORAGES = Map.ofEntries(
            Map.entry("FloatStorage", DType.F32), Map.entry("HalfStorage", DType.F16),
            Map.entry("BFloat16Storage", DType.BF16), Map.entry("DoubleStorage", DType.F64),
            Map.entry("LongStorage", DType.I64), Map.entry("IntStorage", DType.I32),
            Map.entry("ShortStorage", DType.I16), Map.entry("CharStorage", DType.I8),
            Map.entry("ByteStorage", DType.U8), Map.entry("BoolStorage", DType.BOOL));

    private static final Set<String> CALLABLE = Set.of("collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
            "torch._tensor._rebuild_from_type_v2", "torch.Size", "argparse.Namespace");
    private static final Set<String> MARKERS = Set.of("torch.Tensor", "torch.nn.parameter.Parameter");

    private static final Object MARK = new Object() {
        @Override public String toString() { return "MARK"; }
    };

    private final Path file;
    private final String entry;
    private final byte[] in;
    private int pos;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private final StorageResolver storages;

    /** Resolves a persistent id's storage key to its element count in the archive (checks the entry exists). */
    interface StorageResolver {
        StorageRef resolve(String key, DType dtype, long numel) throws CheckpointException;
    }

    private TorchUnpickler(Path file, String entry, byte[] in, StorageResolver storages) {
        this.file = file;
        this.entry = entry;
        this.in = in;
        this.storages = storages;
    }

    static Object load(Path file, String entry, byte[] pickle, StorageResolver storages) throws CheckpointException {
        return new TorchUnpickler(file, entry, pickle, storages).run();
    }

    private CheckpointException fail(int at, String msg) {
        return new CheckpointException(file, null, entry + " byte " + at + ": " + msg);
    }

    private CheckpointException refuse(int at, String what) {
        return fail(at, "refused to unpickle " + what + ": only state_dict content is accepted (dicts, lists, tuples, numbers, "
                + "strings, tensors); this reader never runs code from a checkpoint. If you trust the file, load it in "
                + "Python and save model.state_dict() (or convert it to safetensors)");
    }

    private Object run() throws CheckpointException {
        while (true) {
            if (pos >= in.length) throw fail(pos, "pickle ends without STOP (truncated " + entry + ")");
            int at = pos;
            int op = in[pos++] & 0xFF;
            switch (op) {
                case 0x80 -> { // PROTO
                    int v = u8();
                    if (v > 5) throw fail(at, "pickle protocol " + v + " is not supported");
                }
                case 0x95 -> need(8, at).skip(8);                   // FRAME
                case '.' -> {                                      // STOP
                    if (stack.size() != 1 || !marks.isEmpty()) throw fail(at, "STOP with " + stack.size() + " objects on the stack");
                    return stack.get(0);
                }
                case '(' -> { marks.add(stack.size()); stack.add(MARK); }
                case ')' -> push(new PyTuple(List.of()));
                case ']' -> push(new ArrayList<>());
                case '}' -> push(new LinkedHashMap<>());
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'K' -> push((long) u8());
                case 'M' -> push((long) (u8() | (u8() << 8)));
                case 'J' -> push((long) s32());
                case 0x8a -> push(longBytes(u8(), at));            // LONG1
                case 0x8b -> push(longBytes(len32(at), at));       // LONG4
                case 'G' -> {                                      // BINFLOAT, big-endian
                    need(8, at);
                    long bits = 0;
                    for (int i = 0; i < 8; i++) bits = (bits << 8) | (in[pos++] & 0xFF);
                    push(Double.longBitsToDouble(bits));
                }
                case 'X' -> push(utf8(len32(at), at));             // BINUNICODE
                case 0x8c -> push(utf8(u8(), at));                 // SHORT_BINUNICODE
                case 0x8d -> push(utf8(len64(at), at));            // BINUNICODE8
                case 'T' -> push(latin1(len32(at), at));           // BINSTRING (Python 2 str)
                case 'U' -> push(latin1(u8(), at));                // SHORT_BINSTRING
                case 'B' -> push(bytes(len32(at), at));            // BINBYTES
                case 'C' -> push(bytes(u8(), at));                 // SHORT_BINBYTES
                case 0x8e -> push(bytes(len64(at), at));           // BINBYTES8
                case 't' -> push(new PyTuple(popMark(at)));
                case 0x85 -> push(new PyTuple(popN(1, at)));
                case 0x86 -> push(new PyTuple(popN(2, at)));
                case 0x87 -> push(new PyTuple(popN(3, at)));
                case 'l' -> push(new ArrayList<>(popMark(at)));
                case 'a' -> { Object v = pop(at); list(peek(at), at).add(v); }
                case 'e' -> { List<Object> items = popMark(at); list(peek(at), at).addAll(items); }
                case 'd' -> {
                    List<Object> items = popMark(at);
                    Map<Object, Object> m = new LinkedHashMap<>();
                    putPairs(m, items, at);
                    push(m);
                }
                case 's' -> { Object v = pop(at); Object k = pop(at); dict(peek(at), at).put(key(k, at), v); }
                case 'u' -> { List<Object> items = popMark(at); putPairs(dict(peek(at), at), items, at); }
                case 'q' -> memo.put((long) u8(), peek(at));       // BINPUT
                case 'r' -> memo.put(len32(at), peek(at));         // LONG_BINPUT
                case 0x94 -> memo.put((long) memo.size(), peek(at)); // MEMOIZE
                case 'h' -> push(memoGet(u8(), at));               // BINGET
                case 'j' -> push(memoGet(len32(at), at));          // LONG_BINGET
                case '0' -> pop(at);                               // POP
                case '1' -> popMark(at);                           // POP_MARK
                case '2' -> push(peek(at));                        // DUP
                case 'c' -> push(global(line(at), line(at), at));  // GLOBAL
                case 0x93 -> {                                     // STACK_GLOBAL
                    Object name = pop(at), module = pop(at);
                    if (!(module instanceof String m) || !(name instanceof String n)) throw fail(at, "STACK_GLOBAL needs two strings");
                    push(global(m, n, at));
                }
                case 'Q' -> push(persistent(pop(at), at));         // BINPERSID
                case 'R' -> {                                      // REDUCE
                    Object args = pop(at), fn = pop(at);
                    if (!(args instanceof PyTuple t)) throw fail(at, "REDUCE arguments are not a tuple");
                    push(call(fn, t.items(), at));
                }
                case 0x81 -> {                                     // NEWOBJ
                    Object args = pop(at), cls = pop(at);
                    if (cls instanceof PyGlobal g && g.qualified().equals("argparse.Namespace")) push(new Opaque(g.qualified()));
                    else if (cls instanceof PyGlobal g && g.qualified().equals("collections.OrderedDict")) push(new LinkedHashMap<>());
                    else throw refuse(at, "NEWOBJ of " + describe(cls));
                    if (!(args instanceof PyTuple)) throw fail(at, "NEWOBJ arguments are not a tuple");
                }
                case 'b' -> {                                      // BUILD
                    Object state = pop(at);
                    Object obj = peek(at);
                    if (obj instanceof Opaque o) o.state = state;
                    else if (!(obj instanceof Map<?, ?>) && !(obj instanceof TensorRef))
                        throw refuse(at, "BUILD on " + describe(obj));
                    // OrderedDict state (a state_dict's _metadata) and tensor python state are not needed
                }
                default -> throw refuse(at, "opcode " + opcodeName(op));
            }
        }
    }

    private Object global(String module, String name, int at) throws CheckpointException {
        String q = module + "." + name;
        if (CALLABLE.contains(q) || MARKERS.contains(q) || (module.equals("torch") && STORAGES.containsKey(name)))
            return new PyGlobal(module, name);
        throw refuse(at, "the global '" + q + "' (GLOBAL opcode)");
    }

    private StorageRef persistent(Object pid, int at) throws CheckpointException {
        if (!(pid instanceof PyTuple t) || t.items().size() < 5 || !"storage".equals(t.items().get(0)))
            throw fail(at, "persistent id " + describe(pid) + " is not a torch storage ('storage', type, key, location, numel)");
        List<Object> v = t.items();
        if (!(v.get(1) instanceof PyGlobal g) || !g.module().equals("torch") || !STORAGES.containsKey(g.name()))
            throw fail(at, "persistent id names an unsupported storage type " + describe(v.get(1)));
        if (!(v.get(2) instanceof String key)) throw fail(at, "persistent id storage key is not a string");
        if (!(v.get(4) instanceof Long numel) || numel < 0) throw fail(at, "persistent id element count is not a non-negative int");
        return storages.resolve(key, STORAGES.get(g.name()), numel);
    }

    private Object call(Object fn, List<Object> a, int at) throws CheckpointException {
        if (!(fn instanceof PyGlobal g) || !CALLABLE.contains(g.qualified())) throw refuse(at, "REDUCE of " + describe(fn));
        switch (g.qualified()) {
            case "collections.OrderedDict" -> {
                Map<Object, Object> m = new LinkedHashMap<>();
                if (a.size() == 1 && a.get(0) instanceof List<?> pairs) {
                    for (Object p : pairs) {
                        if (!(p instanceof PyTuple kv) || kv.items().size() != 2) throw fail(at, "OrderedDict item is not a pair");
                        m.put(key(kv.items().get(0), at), kv.items().get(1));
                    }
                } else if (!a.isEmpty()) throw fail(at, "OrderedDict called with " + a.size() + " unexpected arguments");
                return m;
            }
            case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor" -> {
                if (a.size() < 4) throw fail(at, g.name() + " needs (storage, offset, size, stride, ...), got " + a.size() + " arguments");
                if (!(a.get(0) instanceof StorageRef s)) throw fail(at, g.name() + ": the first argument is not a storage");
                if (!(a.get(1) instanceof Long off) || off < 0) throw fail(at, g.name() + ": storage offset is not a non-negative int");
                long[] shape = ints(a.get(2), "size", at), stride = ints(a.get(3), "stride", at);
                if (shape.length != stride.length) throw fail(at, g.name() + ": size and stride have different lengths");
                return new TensorRef(s, off, shape, stride);
            }
            case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state" -> {
                if (a.isEmpty() || !(a.get(0) instanceof TensorRef t)) throw fail(at, g.name() + ": the first argument is not a tensor");
                return t;
            }
            case "torch._tensor._rebuild_from_type_v2" -> {
                // (func, type, args, state): a Tensor/Parameter rebuilt by one of the functions above
                if (a.size() != 4 || !(a.get(2) instanceof PyTuple inner)) throw fail(at, g.name() + " needs (func, type, args, state)");
                if (!(a.get(1) instanceof PyGlobal type) || !MARKERS.contains(type.qualified())) throw refuse(at, "tensor subclass " + describe(a.get(1)));
                Object r = call(a.get(0), inner.items(), at);
                if (!(r instanceof TensorRef)) throw fail(at, g.name() + " did not rebuild a tensor");
                return r;
            }
            case "torch.Size" -> {
                if (a.size() != 1 || !(a.get(0) instanceof PyTuple t)) throw fail(at, "torch.Size needs one tuple");
                return t;
            }
            case "argparse.Namespace" -> {
                return new Opaque(g.qualified());
            }
            default -> throw refuse(at, "REDUCE of " + g.qualified());
        }
    }

    private long[] ints(Object o, String what, int at) throws CheckpointException {
        if (!(o instanceof PyTuple t)) throw fail(at, "tensor " + what + " is not a tuple");
        long[] r = new long[t.items().size()];
        for (int i = 0; i < r.length; i++) {
            if (!(t.items().get(i) instanceof Long v) || v < 0) throw fail(at, "tensor " + what + " " + describe(o) + " holds a non-integer or negative value");
            r[i] = v;
        }
        return r;
    }

    // ------------------------------------------------------------------------------------------ stack helpers

    private void push(Object o) { stack.add(o); }

    private Object pop(int at) throws CheckpointException {
        int floor = marks.isEmpty() ? 0 : marks.getLast() + 1;
        if (stack.size() <= floor) throw fail(at, "stack underflow (corrupt pickle)");
        return stack.removeLast();
    }

    private Object peek(int at) throws CheckpointException {
        int floor = marks.isEmpty() ? 0 : marks.getLast() + 1;
        if (stack.size() <= floor) throw fail(at, "stack underflow (corrupt pickle)");
        return stack.getLast();
    }

    private List<Object> popMark(int at) throws CheckpointException {
        if (marks.isEmpty()) throw fail(at, "no MARK on the stack (corrupt pickle)");
        int m = marks.removeLast();
        List<Object> items = new ArrayList<>(stack.subList(m + 1, stack.size()));
        stack.subList(m, stack.size()).clear();
        return items;
    }

    private List<Object> popN(int n, int at) throws CheckpointException {
        Object[] r = new Object[n];
        for (int i = n - 1; i >= 0; i--) r[i] = pop(at);
        return java.util.Arrays.asList(r);
    }

    private Object memoGet(long k, int at) throws CheckpointException {
        if (!memo.containsKey(k)) throw fail(at, "memo key " + k + " was never stored (corrupt pickle)");
        return memo.get(k);
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(Object o, int at) throws CheckpointException {
        if (o instanceof List<?> l && !(o instanceof PyTuple)) return (List<Object>) l;
        throw fail(at, "APPEND to " + describe(o) + ", which is not a list");
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dict(Object o, int at) throws CheckpointException {
        if (o instanceof Map<?, ?> m) return (Map<Object, Object>) m;
        throw fail(at, "SETITEM on " + describe(o) + ", which is not a dict");
    }

    private void putPairs(Map<Object, Object> m, List<Object> items, int at) throws CheckpointException {
        if (items.size() % 2 != 0) throw fail(at, "odd number of items for a dict");
        for (int i = 0; i < items.size(); i += 2) m.put(key(items.get(i), at), items.get(i + 1));
    }

    private Object key(Object k, int at) throws CheckpointException {
        if (k == null || k instanceof String || k instanceof Long || k instanceof BigInteger || k instanceof Boolean
                || k instanceof Double || k instanceof PyTuple) return k;
        throw fail(at, "unhashable or unsupported dict key " + describe(k));
    }

    // ------------------------------------------------------------------------------------------ reading

    private TorchUnpickler need(int n, int at) throws CheckpointException {
        if (n < 0 || pos + (long) n > in.length) throw fail(at, "pickle is truncated (needs " + n + " more bytes)");
        return this;
    }

    private void skip(int n) { pos += n; }

    private int u8() throws CheckpointException {
        need(1, pos - 1);
        return in[pos++] & 0xFF;
    }

    private int s32() throws CheckpointException {
        need(4, pos - 1);
        int v = (in[pos] & 0xFF) | (in[pos + 1] & 0xFF) << 8 | (in[pos + 2] & 0xFF) << 16 | (in[pos + 3] & 0xFF) << 24;
        pos += 4;
        return v;
    }

    private long len32(int at) throws CheckpointException { return s32() & 0xFFFFFFFFL; }

    private long len64(int at) throws CheckpointException {
        need(8, at);
        long v = 0;
        for (int i = 7; i >= 0; i--) v = (v << 8) | (in[pos + i] & 0xFF);
        pos += 8;
        if (v < 0) throw fail(at, "negative length");
        return v;
    }

    private byte[] bytes(long n, int at) throws CheckpointException {
        if (n > in.length - pos) throw fail(at, "pickle is truncated (a value of " + n + " bytes does not fit)");
        byte[] b = java.util.Arrays.copyOfRange(in, pos, pos + (int) n);
        pos += (int) n;
        return b;
    }

    private String utf8(long n, int at) throws CheckpointException { return new String(bytes(n, at), StandardCharsets.UTF_8); }

    private String latin1(long n, int at) throws CheckpointException { return new String(bytes(n, at), StandardCharsets.ISO_8859_1); }

    private Object longBytes(long n, int at) throws CheckpointException {
        byte[] le = bytes(n, at);
        if (le.length == 0) return 0L;
        byte[] be = new byte[le.length];
        for (int i = 0; i < le.length; i++) be[i] = le[le.length - 1 - i];
        BigInteger v = new BigInteger(be);
        return v.bitLength() < 64 ? (Object) v.longValue() : v;
    }

    private String line(int at) throws CheckpointException {
        int start = pos;
        while (pos < in.length && in[pos] != '\n') pos++;
        if (pos >= in.length) throw fail(at, "GLOBAL name is not terminated (truncated pickle)");
        String s = new String(in, start, pos - start, StandardCharsets.UTF_8);
        pos++;
        return s;
    }

    static String describe(Object o) {
        if (o == null) return "None";
        if (o instanceof PyGlobal g) return "'" + g.qualified() + "'";
        if (o instanceof String s) return "'" + (s.length() > 40 ? s.substring(0, 37) + "..." : s) + "'";
        if (o instanceof PyTuple t) return "a tuple of " + t.items().size();
        if (o instanceof Map<?, ?> m) return "a dict of " + m.size();
        if (o instanceof List<?> l) return "a list of " + l.size();
        if (o instanceof TensorRef) return "a tensor";
        if (o instanceof StorageRef) return "a storage";
        return o.getClass().getSimpleName() + " " + o;
    }

    private static String opcodeName(int op) {
        String name = switch (op) {
            case 'i' -> "INST";
            case 'o' -> "OBJ";
            case 0x92 -> "NEWOBJ_EX";
            case 'P' -> "PERSID";
            case 'I' -> "INT";
            case 'L' -> "LONG";
            case 'F' -> "FLOAT";
            case 'S' -> "STRING";
            case 'V' -> "UNICODE";
            case 'g' -> "GET";
            case 'p' -> "PUT";
            case 0x82 -> "EXT1";
            case 0x83 -> "EXT2";
            case 0x84 -> "EXT4";
            case 0x8f -> "EMPTY_SET";
            case 0x90 -> "ADDITEMS";
            case 0x91 -> "FROZENSET";
            case 0x96 -> "BYTEARRAY8";
            case 0x97 -> "NEXT_BUFFER";
            case 0x98 -> "READONLY_BUFFER";
            default -> "unknown";
        };
        return name + String.format(" (0x%02x)", op);
    }
}
