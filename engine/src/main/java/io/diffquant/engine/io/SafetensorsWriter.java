package io.diffquant.engine.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builder that writes a safetensors file (huggingface/safetensors README "Format"): u64 little-endian header size,
 * a JSON header padded with spaces so the data starts at an 8-byte boundary (as the reference writer does), then the
 * tensors' little-endian bytes back to back in the order they were added. {@link #write} is atomic.
 * Tensors given to {@code add*} are not copied: their contents are read when {@link #write} runs.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Entry> entries = new ArrayList<>();
    private final Set<String> names = new HashSet<>();

    private record Entry(String name, DType dtype, long[] shape, long byteLength, Source source) {}

    @FunctionalInterface
    private interface Source {
        void put(ByteBuffer out, long from, int count);   // count elements starting at element index from
    }

    public SafetensorsWriter() {}

    /** Adds a {@code __metadata__} entry (string to string, as the format requires). */
    public SafetensorsWriter metadata(String key, String value) {
        if (key == null || value == null) throw new IllegalArgumentException("metadata key and value must not be null");
        metadata.put(key, value);
        return this;
    }

    /** Adds {@code t} as F32. */
    public SafetensorsWriter add(String name, Tensor t) {
        float[] d = t.data();
        return entry(name, DType.F32, longShape(t), (out, from, count) -> {
            out.asFloatBuffer().put(d, (int) from, count);   // view shares the buffer's little-endian order
            out.position(out.position() + 4 * count);
        });
    }

    /** Adds {@code t} rounded to F16 (round to nearest even). */
    public SafetensorsWriter addF16(String name, Tensor t) {
        float[] d = t.data();
        return entry(name, DType.F16, longShape(t), (out, from, count) -> {
            short[] h = new short[count];
            for (int i = 0; i < count; i++) h[i] = HalfFloats.floatToHalf(d[(int) from + i]);
            out.asShortBuffer().put(h);
            out.position(out.position() + 2 * count);
        });
    }

    /** Adds {@code t} rounded to BF16 (round to nearest even). */
    public SafetensorsWriter addBF16(String name, Tensor t) {
        float[] d = t.data();
        return entry(name, DType.BF16, longShape(t), (out, from, count) -> {
            short[] h = new short[count];
            for (int i = 0; i < count; i++) h[i] = HalfFloats.floatToBFloat16(d[(int) from + i]);
            out.asShortBuffer().put(h);
            out.position(out.position() + 2 * count);
        });
    }

    /** Adds I64 values with the given shape (empty shape = 0-dim, one value). The array is copied. */
    public SafetensorsWriter addLongs(String name, long[] values, long... shape) {
        long[] v = values.clone();
        checkCount(name, v.length, shape);
        return entry(name, DType.I64, shape, (out, from, count) -> {
            out.asLongBuffer().put(v, (int) from, count);
            out.position(out.position() + 8 * count);
        });
    }

    /** Adds I32 values with the given shape (empty shape = 0-dim, one value). The array is copied. */
    public SafetensorsWriter addInts(String name, int[] values, long... shape) {
        int[] v = values.clone();
        checkCount(name, v.length, shape);
        return entry(name, DType.I32, shape, (out, from, count) -> {
            out.asIntBuffer().put(v, (int) from, count);
            out.position(out.position() + 4 * count);
        });
    }

    /** Adds raw little-endian bytes of any dtype; their length must be numel(shape) * dtype size. The array is copied. */
    public SafetensorsWriter addRaw(String name, DType dtype, long[] shape, byte[] littleEndian) {
        byte[] b = littleEndian.clone();
        long numel = numel(name, shape);
        long need;
        try {
            need = Math.multiplyExact(numel, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " is too large");
        }
        if (need != b.length) {
            throw new IllegalArgumentException("tensor '" + name + "': " + dtype + Arrays.toString(shape) + " needs "
                    + need + " bytes, got " + b.length);
        }
        int size = dtype.byteSize();
        return entry(name, dtype, shape, (out, from, count) -> out.put(b, (int) from * size, count * size));
    }

    /** Produces a tensor when {@link #write} reaches it (e.g. read from a mapped checkpoint). */
    @FunctionalInterface
    public interface TensorSupplier {
        Tensor get() throws IOException;
    }

    /**
     * Adds a tensor that is produced only when {@link #write} reaches it and released right after, as F32, F16 or BF16:
     * a converter streams a checkpoint tensor by tensor and holds one of them in the heap at a time.
     * The supplied tensor must have {@code shape}.
     */
    public SafetensorsWriter addDeferred(String name, DType dtype, int[] shape, TensorSupplier supplier) {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16)
            throw new IllegalArgumentException("tensor '" + name + "': deferred tensors are written as F32, F16 or BF16, not " + dtype);
        long[] ls = new long[shape.length];
        for (int i = 0; i < shape.length; i++) ls[i] = shape[i];
        int[] want = shape.clone();
        long numel = numel(name, ls);
        float[][] held = new float[1][];
        return entry(name, dtype, ls, (out, from, count) -> {
            if (held[0] == null) {
                Tensor t;
                try {
                    t = supplier.get();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                if (!Arrays.equals(t.shape(), want)) throw new IllegalArgumentException("tensor '" + name + "': supplied shape "
                        + Arrays.toString(t.shape()) + ", declared " + Arrays.toString(want));
                held[0] = t.data();
            }
            float[] d = held[0];
            switch (dtype) {
                case F32 -> {
                    out.asFloatBuffer().put(d, (int) from, count);
                    out.position(out.position() + 4 * count);
                }
                default -> {
                    short[] h = new short[count];
                    for (int i = 0; i < count; i++) h[i] = dtype == DType.F16 ? HalfFloats.floatToHalf(d[(int) from + i])
                            : HalfFloats.floatToBFloat16(d[(int) from + i]);
                    out.asShortBuffer().put(h);
                    out.position(out.position() + 2 * count);
                }
            }
            if (from + count >= numel) held[0] = null;
        });
    }

    /** Names added so far, in order. */
    public List<String> names() {
        List<String> out = new ArrayList<>();
        for (Entry e : entries) out.add(e.name);
        return out;
    }

    /** Writes the file atomically (temporary file beside it, fsync, rename); an existing file is replaced. */
    public void write(Path file) throws IOException {
        byte[] header = header();
        try {
            try {
                AtomicFiles.write(file, ch -> writeTo(ch, header));
            } catch (java.io.UncheckedIOException e) {
                throw e.getCause();
            }
        } catch (SafetensorsException | CheckpointException e) {
            throw e;
        } catch (IOException e) {
            String m = String.valueOf(e.getMessage());
            if (m.startsWith(file + ": ")) m = m.substring(file.toString().length() + 2);
            throw new SafetensorsException(file, null, "cannot write: " + m, e);
        }
    }

    /** The JSON header, padded with spaces to a multiple of 8 bytes. */
    byte[] header() {
        ObjectNode root = MAPPER.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long offset = 0;
        for (Entry e : entries) {
            ObjectNode t = root.putObject(e.name);
            t.put("dtype", e.dtype.headerName());
            ArrayNode s = t.putArray("shape");
            for (long d : e.shape) s.add(d);
            ArrayNode o = t.putArray("data_offsets");
            o.add(offset);
            offset += e.byteLength;
            o.add(offset);
        }
        byte[] json;
        try {
            json = MAPPER.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot serialise a safetensors header", e);
        }
        int padded = (json.length + 7) & ~7;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private void writeTo(FileChannel ch, byte[] header) throws IOException {
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
        AtomicFiles.writeFully(ch, len);
        AtomicFiles.writeFully(ch, ByteBuffer.wrap(header));
        ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        for (Entry e : entries) {
            int size = e.dtype.byteSize();
            long numel = e.byteLength / size;
            int perChunk = buf.capacity() / size;
            for (long i = 0; i < numel; i += perChunk) {
                int k = (int) Math.min(perChunk, numel - i);
                buf.clear();
                e.source.put(buf, i, k);
                buf.flip();
                AtomicFiles.writeFully(ch, buf);
            }
        }
    }

    private SafetensorsWriter entry(String name, DType dtype, long[] shape, Source source) {
        if (name == null) throw new IllegalArgumentException("tensor name must not be null");
        if (name.equals("__metadata__")) throw new IllegalArgumentException("'__metadata__' is reserved and cannot name a tensor");
        if (names.contains(name)) throw new IllegalArgumentException("tensor '" + name + "' was already added");
        long numel = numel(name, shape);
        long bytes;
        try {
            bytes = Math.multiplyExact(numel, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " is too large");
        }
        names.add(name);
        entries.add(new Entry(name, dtype, shape.clone(), bytes, source));
        return this;
    }

    private static long[] longShape(Tensor t) {
        int[] s = t.shape();
        long[] out = new long[s.length];
        for (int i = 0; i < s.length; i++) out[i] = s[i];
        return out;
    }

    private static long numel(String name, long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("tensor '" + name + "': negative dimension in " + Arrays.toString(shape));
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " is too large");
            }
        }
        return n;
    }

    private static void checkCount(String name, int have, long[] shape) {
        long need = numel(name, shape);
        if (need != have) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " needs " + need
                    + " values, got " + have);
        }
    }
}
