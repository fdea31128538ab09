package io.diffquant.engine.io;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Memory-mapped reader of the safetensors format (huggingface/safetensors README "Format": u64 little-endian header
 * size N, N bytes of UTF-8 JSON, then the raw little-endian data). The whole header is validated in {@link #open};
 * the file is mapped with the FFM API (files over 2 GB work) and nothing is copied until a tensor is read.
 * Thread-safe for concurrent reads; {@link #close()} unmaps, after which reads throw {@link IllegalStateException}.
 */
public final class SafetensorsReader implements AutoCloseable {
    /** Largest header accepted, as the reference implementation (100 MB). */
    public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;
    /** Largest element count that fits a Java array. */
    static final long MAX_ARRAY = Integer.MAX_VALUE - 16;

    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final ObjectMapper HEADER_MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();
    private static final int CHUNK = 1 << 16;

    private final Path file;
    private final Arena arena;
    private final MemorySegment mapped;
    private final long dataStart;
    private final Map<String, TensorInfo> infos;
    private final List<String> names;
    private final Map<String, String> metadata;
    private volatile boolean closed;

    private SafetensorsReader(Path file, Arena arena, MemorySegment mapped, long dataStart,
                              Map<String, TensorInfo> infos, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.mapped = mapped;
        this.dataStart = dataStart;
        this.infos = infos;
        this.names = List.copyOf(infos.keySet());
        this.metadata = metadata;
    }

    /** Opens and validates {@code file}; see the class comment. Any format violation is a {@link SafetensorsException}. */
    public static SafetensorsReader open(Path file) throws IOException {
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new SafetensorsException(file, null, "no such file", e);
        } catch (IOException e) {
            throw new SafetensorsException(file, null, "cannot open: " + e, e);
        }
        try (ch) {
            if (Files.isDirectory(file)) throw new SafetensorsException(file, null, "is a directory, not a safetensors file");
            long size = ch.size();
            if (size < 8) {
                throw new SafetensorsException(file, null, "file too short to be safetensors: " + size
                        + " bytes, need at least 8 (the header length)");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, file);
            long n = lenBuf.getLong(0);
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw new SafetensorsException(file, null, "header length " + Long.toUnsignedString(n)
                        + " is larger than the limit of " + MAX_HEADER_BYTES + " bytes (corrupt or not a safetensors file)");
            }
            if (8 + n > size) {
                throw new SafetensorsException(file, null, "header length " + n + " points past the end of the file ("
                        + size + " bytes): the file is truncated or not a safetensors file");
            }
            ByteBuffer headerBuf = ByteBuffer.allocate((int) n);
            readFully(ch, headerBuf, 8, file);
            long dataStart = 8 + n;
            long dataSize = size - dataStart;
            JsonNode root = parseHeader(file, headerBuf.array());
            Map<String, String> metadata = new LinkedHashMap<>();
            List<TensorInfo> list = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (e.getKey().equals("__metadata__")) {
                    parseMetadata(file, e.getValue(), metadata);
                } else {
                    list.add(parseEntry(file, e.getKey(), e.getValue(), dataSize));
                }
            }
            // data-offset order (stable: equal offsets keep header order); then no two non-empty tensors overlap
            List<TensorInfo> sorted = new ArrayList<>(list);
            sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
            TensorInfo reach = null;
            for (TensorInfo t : sorted) {
                if (t.begin() == t.end()) continue;
                if (reach != null && t.begin() < reach.end()) {
                    throw new SafetensorsException(file, t.name(), "data_offsets [" + t.begin() + ", " + t.end()
                            + "] overlap those of tensor '" + reach.name() + "' [" + reach.begin() + ", " + reach.end() + "]");
                }
                if (reach == null || t.end() > reach.end()) reach = t;
            }
            Map<String, TensorInfo> infos = new LinkedHashMap<>();
            for (TensorInfo t : sorted) infos.put(t.name(), t);
            Arena arena = Arena.ofShared();
            MemorySegment seg;
            try {
                seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw new SafetensorsException(file, null, "cannot memory-map the file: " + e, e);
            }
            return new SafetensorsReader(file, arena, seg, dataStart, Collections.unmodifiableMap(infos),
                    Collections.unmodifiableMap(metadata));
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long pos, Path file) throws IOException {
        long p = pos;
        while (buf.hasRemaining()) {
            int r = ch.read(buf, p);
            if (r < 0) throw new SafetensorsException(file, null, "unexpected end of file at byte " + p);
            p += r;
        }
    }

    private static JsonNode parseHeader(Path file, byte[] bytes) throws SafetensorsException {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsException(file, null, "header is not valid UTF-8 (" + e.getMessage() + ")", e);
        }
        JsonNode root;
        try {
            root = HEADER_MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            JsonLocation loc = e.getLocation();
            String where = loc == null ? "" : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr();
            throw new SafetensorsException(file, null, "header is not valid JSON" + where + ": " + e.getOriginalMessage(), e);
        }
        if (root == null || root.isMissingNode()) {
            throw new SafetensorsException(file, null, "header is empty, expected a JSON object");
        }
        if (!root.isObject()) {
            throw new SafetensorsException(file, null, "header must be a JSON object, got " + describe(root));
        }
        return root;
    }

    private static void parseMetadata(Path file, JsonNode node, Map<String, String> out) throws SafetensorsException {
        if (!node.isObject()) {
            throw new SafetensorsException(file, null, "__metadata__ must be an object of strings, got " + describe(node));
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new SafetensorsException(file, null, "__metadata__." + e.getKey() + " must be a string, got "
                        + describe(e.getValue()));
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static TensorInfo parseEntry(Path file, String name, JsonNode node, long dataSize) throws SafetensorsException {
        if (!node.isObject()) {
            throw new SafetensorsException(file, name, "header entry must be an object with dtype, shape and data_offsets, got "
                    + describe(node));
        }
        JsonNode dt = node.get("dtype");
        if (dt == null || !dt.isTextual()) {
            throw new SafetensorsException(file, name, dt == null ? "missing \"dtype\"" : "\"dtype\" must be a string, got " + describe(dt));
        }
        DType dtype = DType.fromHeaderName(dt.textValue());
        if (dtype == null) {
            throw new SafetensorsException(file, name, "unsupported dtype \"" + dt.textValue() + "\" (supported: "
                    + DType.supportedNames() + ")");
        }
        JsonNode sh = node.get("shape");
        if (sh == null || !sh.isArray()) {
            throw new SafetensorsException(file, name, sh == null ? "missing \"shape\"" : "\"shape\" must be an array of integers, got " + describe(sh));
        }
        long[] shape = new long[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(file, name, "shape[" + i + "]", sh.get(i));
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException e) {
                throw new SafetensorsException(file, name, "shape " + sh + " has more elements than fit in 64 bits");
            }
        }
        JsonNode off = node.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2) {
            throw new SafetensorsException(file, name, off == null ? "missing \"data_offsets\""
                    : "\"data_offsets\" must be an array [begin, end], got " + describe(off));
        }
        long begin = nonNegativeLong(file, name, "data_offsets[0]", off.get(0));
        long end = nonNegativeLong(file, name, "data_offsets[1]", off.get(1));
        if (begin > end) {
            throw new SafetensorsException(file, name, "data_offsets [" + begin + ", " + end + "]: begin is after end");
        }
        if (end > dataSize) {
            throw new SafetensorsException(file, name, "data_offsets [" + begin + ", " + end + "] reach past the end of the data ("
                    + dataSize + " bytes after the header): the file is truncated or the header is corrupt");
        }
        long expected;
        try {
            expected = Math.multiplyExact(numel, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new SafetensorsException(file, name, "shape " + sh + " of " + dtype + " needs more bytes than fit in 64 bits");
        }
        if (end - begin != expected) {
            throw new SafetensorsException(file, name, "data_offsets [" + begin + ", " + end + "] hold " + (end - begin)
                    + " bytes but " + dtype + Arrays.toString(shape) + " needs " + expected);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static long nonNegativeLong(Path file, String name, String what, JsonNode v) throws SafetensorsException {
        if (v == null || !v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
            throw new SafetensorsException(file, name, what + " must be a non-negative integer, got " + describe(v));
        }
        return v.longValue();
    }

    private static String describe(JsonNode v) {
        if (v == null) return "nothing";
        String s = v.toString();
        return s.length() > 60 ? s.substring(0, 57) + "..." : s;
    }

    // ---------------------------------------------------------------- header queries

    public Path file() { return file; }

    /** Tensor names in data-offset order. */
    public List<String> names() { return names; }

    public boolean contains(String name) { return infos.containsKey(name); }

    /** The header entry of {@code name}; a {@link SafetensorsException} if there is none. */
    public TensorInfo info(String name) throws SafetensorsException {
        TensorInfo t = infos.get(name);
        if (t == null) throw missing(name);
        return t;
    }

    /** The {@code __metadata__} map (empty if absent), in header order. */
    public Map<String, String> metadata() { return metadata; }

    // ---------------------------------------------------------------- data

    /**
     * A read-only view of the raw little-endian bytes of {@code name}, without copying; valid until {@link #close()}.
     */
    public MemorySegment segment(String name) throws SafetensorsException {
        TensorInfo t = info(name);
        checkOpen();
        return mapped.asSlice(dataStart + t.begin(), t.byteLength()).asReadOnly();
    }

    /** The tensor converted to float32 (F16/BF16/F64 exactly rounded, integers and BOOL cast), with the same shape. */
    public Tensor readFloat(String name) throws SafetensorsException {
        TensorInfo t = info(name);
        int[] shape = arrayShape(t);
        int n = (int) t.numel();
        float[] out = new float[n];
        checkOpen();
        long off = dataStart + t.begin();
        MemorySegment m = mapped;
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(m, F32_LE, off, out, 0, n);
            case F16, BF16 -> {
                short[] buf = new short[Math.min(n, CHUNK)];
                for (int i = 0; i < n; i += buf.length) {
                    int k = Math.min(buf.length, n - i);
                    MemorySegment.copy(m, I16_LE, off + 2L * i, buf, 0, k);
                    if (t.dtype() == DType.F16) HalfFloats.halfToFloat(buf, 0, out, i, k);
                    else HalfFloats.bfloat16ToFloat(buf, 0, out, i, k);
                }
            }
            case F64 -> { for (int i = 0; i < n; i++) out[i] = (float) m.get(F64_LE, off + 8L * i); }
            case I64 -> { for (int i = 0; i < n; i++) out[i] = (float) m.get(I64_LE, off + 8L * i); }
            case I32 -> { for (int i = 0; i < n; i++) out[i] = (float) m.get(I32_LE, off + 4L * i); }
            case I16 -> { for (int i = 0; i < n; i++) out[i] = m.get(I16_LE, off + 2L * i); }
            case I8 -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i); }
            case U8 -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i) & 0xFF; }
            case BOOL -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i) != 0 ? 1f : 0f; }
        }
        return Tensor.of(out, shape);
    }

    /** The values of an integer (or BOOL) tensor, flattened row-major. */
    public long[] readLongs(String name) throws SafetensorsException {
        TensorInfo t = info(name);
        int n = integerCount(t);
        long[] out = new long[n];
        checkOpen();
        long off = dataStart + t.begin();
        MemorySegment m = mapped;
        switch (t.dtype()) {
            case I64 -> MemorySegment.copy(m, I64_LE, off, out, 0, n);
            case I32 -> { for (int i = 0; i < n; i++) out[i] = m.get(I32_LE, off + 4L * i); }
            case I16 -> { for (int i = 0; i < n; i++) out[i] = m.get(I16_LE, off + 2L * i); }
            case I8 -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i); }
            case U8 -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i) & 0xFF; }
            case BOOL -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i) != 0 ? 1 : 0; }
            default -> throw new AssertionError(t.dtype());
        }
        return out;
    }

    /** The values of an integer (or BOOL) tensor as ints; an I64 value outside the int range is an error. */
    public int[] readInts(String name) throws SafetensorsException {
        TensorInfo t = info(name);
        int n = integerCount(t);
        int[] out = new int[n];
        checkOpen();
        long off = dataStart + t.begin();
        MemorySegment m = mapped;
        switch (t.dtype()) {
            case I64 -> {
                for (int i = 0; i < n; i++) {
                    long v = m.get(I64_LE, off + 8L * i);
                    if (v != (int) v) {
                        throw new SafetensorsException(file, name, "element " + i + " = " + v + " does not fit in an int");
                    }
                    out[i] = (int) v;
                }
            }
            case I32 -> MemorySegment.copy(m, I32_LE, off, out, 0, n);
            case I16 -> { for (int i = 0; i < n; i++) out[i] = m.get(I16_LE, off + 2L * i); }
            case I8 -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i); }
            case U8 -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i) & 0xFF; }
            case BOOL -> { for (int i = 0; i < n; i++) out[i] = m.get(ValueLayout.JAVA_BYTE, off + i) != 0 ? 1 : 0; }
            default -> throw new AssertionError(t.dtype());
        }
        return out;
    }

    /** The raw little-endian bytes of {@code name}, copied. */
    public byte[] readBytes(String name) throws SafetensorsException {
        TensorInfo t = info(name);
        if (t.byteLength() > MAX_ARRAY) {
            throw new SafetensorsException(file, name, t.byteLength() + " bytes do not fit in a Java array");
        }
        byte[] out = new byte[(int) t.byteLength()];
        checkOpen();
        MemorySegment.copy(mapped, ValueLayout.JAVA_BYTE, dataStart + t.begin(), out, 0, out.length);
        return out;
    }

    /** Every tensor converted to float32, in {@link #names()} order. */
    public Map<String, Tensor> readAllFloat() throws SafetensorsException {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String n : names) out.put(n, readFloat(n));
        return out;
    }

    /** Unmaps the file. Idempotent. Reads after this throw {@link IllegalStateException}. */
    @Override public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        arena.close();
    }

    @Override public String toString() {
        return "SafetensorsReader[" + file + ", " + names.size() + " tensors" + (closed ? ", closed" : "") + "]";
    }

    // ---------------------------------------------------------------- helpers

    private void checkOpen() {
        if (closed) throw new IllegalStateException(file + ": the safetensors reader is closed");
    }

    private int[] arrayShape(TensorInfo t) throws SafetensorsException {
        if (t.numel() > MAX_ARRAY) {
            throw new SafetensorsException(file, t.name(), "shape " + Arrays.toString(t.shape()) + " has " + t.numel()
                    + " elements, more than a Java array holds");
        }
        try {
            return t.intShape();
        } catch (IllegalArgumentException e) {   // an empty tensor with a dimension beyond int range
            throw new SafetensorsException(file, t.name(), "shape " + Arrays.toString(t.shape())
                    + " has a dimension beyond the int range of engine tensors");
        }
    }

    private int integerCount(TensorInfo t) throws SafetensorsException {
        if (!t.dtype().isInteger()) {
            throw new SafetensorsException(file, t.name(), "has dtype " + t.dtype() + ", expected an integer dtype "
                    + "(I64, I32, I16, I8, U8, BOOL); use readFloat");
        }
        return (int) Tensor.numel(arrayShape(t));
    }

    private SafetensorsException missing(String name) {
        List<String> close = closeNames(name, 5);
        String msg = "no such tensor (the file has " + names.size() + " tensor" + (names.size() == 1 ? "" : "s")
                + (close.isEmpty() ? "" : "; close names: " + String.join(", ", close)) + ")";
        return new SafetensorsException(file, name, msg);
    }

    /** Up to {@code max} names within a small edit distance of {@code name}, nearest first. */
    List<String> closeNames(String name, int max) {
        int limit = Math.max(2, name.length() / 4);
        List<Map.Entry<String, Integer>> hits = new ArrayList<>();
        for (String n : names) {
            if (Math.abs(n.length() - name.length()) > limit) continue;
            int d = editDistance(name, n, limit);
            if (d <= limit) hits.add(Map.entry(n, d));
        }
        hits.sort(Map.Entry.comparingByValue());
        List<String> out = new ArrayList<>();
        for (int i = 0; i < Math.min(max, hits.size()); i++) out.add(hits.get(i).getKey());
        return out;
    }

    /** Levenshtein distance, or something above {@code limit} once it is certain to exceed it. */
    static int editDistance(String a, String b, int limit) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            int rowMin = cur[0];
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
                rowMin = Math.min(rowMin, cur[j]);
            }
            if (rowMin > limit) return limit + 1;
            int[] tmp = prev; prev = cur; cur = tmp;
        }
        return prev[b.length()];
    }
}
