package io.diffquant.engine.io;

import io.diffquant.engine.io.TorchUnpickler.Opaque;
import io.diffquant.engine.io.TorchUnpickler.PyTuple;
import io.diffquant.engine.io.TorchUnpickler.StorageRef;
import io.diffquant.engine.io.TorchUnpickler.TensorRef;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads PyTorch checkpoints written by {@code torch.save} in the zip format (PyTorch >= 1.6; torch/serialization.py
 * {@code _save}: {@code <archive>/data.pkl} + one {@code <archive>/data/<key>} entry per storage) without Python:
 * the pickle is interpreted by a restricted unpickler that builds only dicts, lists, tuples, scalars and tensor views
 * and refuses every other class. The file is memory-mapped; a tensor is converted to float32 only when it is read
 * (strided views are gathered), so no second copy of the checkpoint is ever held in the heap.
 *
 * <p>Which dict is the state_dict: the top-level dict when it holds tensors itself (official DiT {@code .pt} files,
 * diffusers {@code .bin}, CompVis/DDIM {@code .ckpt}), otherwise its {@code "ema"} entry (DiT training checkpoints
 * {@code {"model", "ema", "opt", "args"}}), else {@code "state_dict"} (Lightning), else {@code "model"}. Nested dicts
 * inside the state_dict are flattened with dots; non-tensor entries are skipped and listed by {@link #ignored()}.
 * Thread-safe for concurrent reads; {@link #close()} unmaps.
 */
public final class TorchCheckpoint implements AutoCloseable {
    /** Keys tried in order when the top-level dict holds no tensors itself. */
    public static final List<String> PREFERRED_KEYS = List.of("ema", "state_dict", "model");

    private final Path file;
    private final Arena arena;
    private final TorchZip zip;
    private final String prefix;
    private final String selected;
    private final List<String> topLevelKeys;
    private final Map<String, TensorRef> tensors;
    private final List<String> ignored;
    private volatile boolean closed;

    /** Header facts of one tensor: stored dtype, shape, and whether its view is row-major contiguous. */
    public record Info(String name, DType dtype, int[] shape, boolean contiguous) {
        public Info { shape = shape.clone(); }
        @Override public int[] shape() { return shape.clone(); }
        public long numel() { return Tensor.numel(shape); }
    }

    private TorchCheckpoint(Path file, Arena arena, TorchZip zip, String prefix, String selected, List<String> top,
                            Map<String, TensorRef> tensors, List<String> ignored) {
        this.file = file;
        this.arena = arena;
        this.zip = zip;
        this.prefix = prefix;
        this.selected = selected;
        this.topLevelKeys = top;
        this.tensors = tensors;
        this.ignored = ignored;
    }

    /** Opens {@code file} and picks the state_dict automatically (see the class comment). */
    public static TorchCheckpoint open(Path file) throws IOException { return open(file, null); }

    /**
     * Opens {@code file}; {@code select} is a '/'-separated path of dict keys to the state_dict ("ema",
     * "state_dict", "model/unet"), "" for the top-level dict, or null to pick automatically.
     */
    public static TorchCheckpoint open(Path file, String select) throws IOException {
        if (Files.isDirectory(file)) throw new CheckpointException(file, null, "is a directory, not a PyTorch checkpoint file");
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new CheckpointException(file, null, "no such file", e);
        }
        Arena arena = Arena.ofShared();
        try (ch) {
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            TorchZip zip = TorchZip.read(file, seg);
            String prefix = null;
            for (String n : zip.entries().keySet()) {
                if (n.endsWith("/data.pkl") && n.indexOf('/') == n.length() - 9) {
                    if (prefix != null) throw new CheckpointException(file, null, "the archive holds more than one data.pkl");
                    prefix = n.substring(0, n.length() - 8);
                }
            }
            if (prefix == null) throw new CheckpointException(file, null, "zip archive without <archive>/data.pkl: not a torch.save checkpoint"
                    + " (entries: " + head(new ArrayList<>(zip.entries().keySet())) + ")");
            TorchZip.Entry bo = zip.entries().get(prefix + "byteorder");
            if (bo != null) {
                String order = new String(zip.data(bo).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII).strip();
                if (!order.equals("little")) throw new CheckpointException(file, null, "storages are stored " + order
                        + "-endian; only little-endian checkpoints are supported");
            }
            TorchZip.Entry pkl = zip.entries().get(prefix + "data.pkl");
            if (pkl.size() > Integer.MAX_VALUE - 16) throw new CheckpointException(file, null, "data.pkl is larger than 2 GB");
            byte[] pickle = zip.data(pkl).toArray(ValueLayout.JAVA_BYTE);
            final String pre = prefix;
            Object root = TorchUnpickler.load(file, prefix + "data.pkl", pickle, (key, dtype, numel) -> {
                TorchZip.Entry e = zip.entries().get(pre + "data/" + key);
                if (e == null) throw new CheckpointException(file, null, "storage '" + key + "' has no entry " + pre + "data/" + key
                        + " in the archive (truncated or corrupt checkpoint)");
                long need;
                try {
                    need = Math.multiplyExact(numel, (long) dtype.byteSize());
                } catch (ArithmeticException ex) {
                    throw new CheckpointException(file, null, "storage '" + key + "' is too large");
                }
                if (e.size() < need) throw new CheckpointException(file, null, "storage '" + key + "' holds " + e.size()
                        + " bytes but " + numel + " elements of " + dtype + " need " + need);
                return new StorageRef(key, dtype, numel);
            });
            if (!(root instanceof Map<?, ?> top)) throw new CheckpointException(file, null, "the checkpoint holds "
                    + TorchUnpickler.describe(root) + ", not a dict (a state_dict or a training checkpoint)");
            List<String> topKeys = new ArrayList<>();
            for (Object k : top.keySet()) topKeys.add(String.valueOf(k));
            String sel = select;
            Map<?, ?> sd;
            if (sel == null) {
                sel = "";
                sd = top;
                if (!holdsTensors(top)) {
                    for (String k : PREFERRED_KEYS) {
                        if (top.get(k) instanceof Map<?, ?> m && holdsTensorsDeep(m, 0)) { sel = k; sd = m; break; }
                    }
                    if (sd == top) throw new CheckpointException(file, null, "found no state_dict: the top-level dict holds no tensors "
                            + "and none of " + PREFERRED_KEYS + " is a dict of tensors; top-level keys: " + head(topKeys)
                            + " (choose one explicitly)");
                }
            } else {
                sd = top;
                if (!sel.isEmpty()) {
                    for (String part : sel.split("/")) {
                        Object next = sd.get(part);
                        if (!(next instanceof Map<?, ?> m)) throw new CheckpointException(file, null, "'" + sel + "': key '" + part
                                + "' " + (next == null ? "does not exist" : "is " + TorchUnpickler.describe(next) + ", not a dict")
                                + " (keys there: " + head(keysOf(sd)) + ")");
                        sd = m;
                    }
                }
            }
            Map<String, TensorRef> tensors = new LinkedHashMap<>();
            List<String> ignored = new ArrayList<>();
            flatten(file, sd, "", tensors, ignored, 0);
            if (tensors.isEmpty()) throw new CheckpointException(file, null, "the selected dict '" + sel + "' holds no tensors");
            return new TorchCheckpoint(file, arena, zip, prefix, sel, List.copyOf(topKeys), Collections.unmodifiableMap(tensors),
                    List.copyOf(ignored));
        } catch (IOException | RuntimeException e) {
            arena.close();
            if (e instanceof CheckpointException || e instanceof NoSuchFileException) throw e;
            throw new CheckpointException(file, null, "cannot read: " + e, e);
        }
    }

    private static boolean holdsTensors(Map<?, ?> m) {
        for (Object v : m.values()) if (v instanceof TensorRef) return true;
        return false;
    }

    private static boolean holdsTensorsDeep(Map<?, ?> m, int depth) {
        if (depth > 8) return false;
        for (Object v : m.values()) {
            if (v instanceof TensorRef) return true;
            if (v instanceof Map<?, ?> c && holdsTensorsDeep(c, depth + 1)) return true;
        }
        return false;
    }

    private static void flatten(Path file, Map<?, ?> m, String prefix, Map<String, TensorRef> out, List<String> ignored, int depth)
            throws CheckpointException {
        if (depth > 32) throw new CheckpointException(file, null, "dicts nested deeper than 32 levels under '" + prefix + "'");
        for (var e : m.entrySet()) {
            String name = prefix + e.getKey();
            Object v = e.getValue();
            if (v instanceof TensorRef t) {
                if (out.put(name, t) != null) throw new CheckpointException(file, name, "appears twice after flattening nested dicts");
            } else if (v instanceof Map<?, ?> c) {
                flatten(file, c, name + ".", out, ignored, depth + 1);
            } else {
                ignored.add(name);
            }
        }
    }

    private static List<String> keysOf(Map<?, ?> m) {
        List<String> r = new ArrayList<>();
        for (Object k : m.keySet()) r.add(String.valueOf(k));
        return r;
    }

    private static String head(List<String> names) {
        return names.size() <= 8 ? names.toString() : names.subList(0, 8) + " ... (" + names.size() + ")";
    }

    // ------------------------------------------------------------------------------------------ queries

    public Path file() { return file; }

    /** The key path of the state_dict that was chosen ("" = the top-level dict). */
    public String selected() { return selected; }

    /** Keys of the top-level dict, as strings. */
    public List<String> topLevelKeys() { return topLevelKeys; }

    /** Tensor names of the state_dict, in pickle (= state_dict) order. */
    public List<String> names() { return List.copyOf(tensors.keySet()); }

    public boolean contains(String name) { return tensors.containsKey(name); }

    /** Entries of the selected dict that are not tensors (e.g. a step counter), skipped. */
    public List<String> ignored() { return ignored; }

    public Info info(String name) throws CheckpointException {
        TensorRef t = ref(name);
        return new Info(name, t.storage().dtype(), intShape(name, t), MappedTensors.isContiguous(t.shape(), t.stride()));
    }

    /** Total elements of all tensors (the parameter count of a state_dict). */
    public long parameterCount() {
        long n = 0;
        for (TensorRef t : tensors.values()) n += numel(t.shape());
        return n;
    }

    /** Bytes the tensors need as float32 (what loading them into engine tensors costs in heap). */
    public long float32Bytes() { return 4 * parameterCount(); }

    // ------------------------------------------------------------------------------------------ data

    /** The tensor converted to float32 with its shape (F16/BF16 exact, F64 rounded, integers cast), gathered if strided. */
    public Tensor readFloat(String name) throws CheckpointException {
        TensorRef t = ref(name);
        int[] shape = intShape(name, t);
        float[] out = new float[(int) Tensor.numel(shape)];
        readInto(name, t, out);
        return Tensor.of(out, shape);
    }

    /** Reads {@code name} as float32 into {@code dst} (length = its element count), e.g. a model's own parameter array. */
    public void readInto(String name, float[] dst) throws CheckpointException {
        TensorRef t = ref(name);
        long n = numel(t.shape());
        if (dst.length != n) throw new CheckpointException(file, name, "has " + n + " elements, the destination " + dst.length);
        readInto(name, t, dst);
    }

    /** True when every element of {@code name} is finite, checked on the mapping (nothing copied to the heap). */
    public boolean allFinite(String name) throws CheckpointException {
        TensorRef t = ref(name);
        MemorySegment s = storage(name, t);
        if (MappedTensors.isContiguous(t.shape(), t.stride())) return MappedTensors.allFinite(s, t.storage().dtype(), t.offset(), numel(t.shape()));
        return readFloat(name).allFinite();
    }

    /** Every tensor as float32, in {@link #names()} order. */
    public Map<String, Tensor> toStateDict() throws CheckpointException {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String n : tensors.keySet()) out.put(n, readFloat(n));
        return out;
    }

    private void readInto(String name, TensorRef t, float[] out) throws CheckpointException {
        MemorySegment s = storage(name, t);
        MappedTensors.gatherToFloat(s, t.storage().dtype(), t.offset(), t.shape(), t.stride(), out);
    }

    /** The storage's mapped bytes, after checking that the view stays inside it. */
    private MemorySegment storage(String name, TensorRef t) throws CheckpointException {
        checkOpen();
        long n = numel(t.shape());
        if (n > 0) {
            long last = t.offset();
            for (int d = 0; d < t.shape().length; d++) last += (t.shape()[d] - 1) * t.stride()[d];
            if (last >= t.storage().numel()) throw new CheckpointException(file, name, "view (offset " + t.offset() + ", size "
                    + Arrays.toString(t.shape()) + ", stride " + Arrays.toString(t.stride()) + ") reaches element " + last
                    + " of a storage of " + t.storage().numel() + " elements");
        }
        TorchZip.Entry e = zip.entries().get(prefix + "data/" + t.storage().key());
        return zip.data(e);
    }

    private TensorRef ref(String name) throws CheckpointException {
        TensorRef t = tensors.get(name);
        if (t == null) throw new CheckpointException(file, name, "no such tensor in '" + (selected.isEmpty() ? "<top level>" : selected)
                + "' (" + tensors.size() + " tensors)");
        return t;
    }

    private int[] intShape(String name, TensorRef t) throws CheckpointException {
        long n = numel(t.shape());
        if (n > Integer.MAX_VALUE - 16 || n < 0) throw new CheckpointException(file, name, "shape " + Arrays.toString(t.shape())
                + " has more elements than an engine tensor holds");
        int[] s = new int[t.shape().length];
        for (int i = 0; i < s.length; i++) s[i] = (int) t.shape()[i];
        return s;
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
            if (n < 0 || n > (1L << 50)) return -1;
        }
        return n;
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException(file + ": the checkpoint is closed");
    }

    /** Unmaps the file. Idempotent. */
    @Override public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        arena.close();
    }

    /** Inert description of a non-tensor value (for reports), e.g. the args of a DiT training checkpoint. */
    static String describeValue(Object o) {
        if (o instanceof Opaque op) return op.toString();
        if (o instanceof PyTuple t) return t.items().toString();
        return String.valueOf(o);
    }

    @Override public String toString() {
        return "TorchCheckpoint[" + file + ", " + tensors.size() + " tensors" + (selected.isEmpty() ? "" : " in '" + selected + "'") + "]";
    }
}
