package io.diffquant.engine.tensor;

import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.javacpp.Loader;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.logging.Logger;
import java.util.stream.Stream;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * oneDNN primitives (oneapi/dnnl/dnnl.h C API: eltwise gelu_tanh, softmax) run in place on NATIVE float buffers
 * through FFM downcalls, for the fused kernels whose intermediate never needs to be a Java array (the DiT MLP's hidden
 * activation, attention probabilities). oneDNN's JIT kernels vectorise what C2 cannot (the exponent bit tricks of exp).
 * <p>Available only while {@link DnnlBlas#ffm()} holds (no JFR recorder: see DnnlBlas for why FFM calls into oneDNN
 * and JFR do not mix); every call takes DnnlBlas's zero-copy read lock and reports {@code false} once that is off, so
 * callers fall back to their Java path. Primitives and the execution stream are kept per thread (a stream must not be
 * shared between threads), keyed by shape; the engine object is shared.
 */
final class DnnlPrimitives {
    private static final Logger LOG = Logger.getLogger(DnnlPrimitives.class.getName());
    private static final int ARG_SRC = 1, ARG_DST = 17;
    /** Most primitives kept per thread (the least recently used one is destroyed beyond this). */
    private static final int CACHE = 16;

    private static final MethodHandle ENGINE_CREATE, STREAM_CREATE, MD_CREATE, MD_DESTROY, ELTWISE_PD, SOFTMAX_PD,
            PD_DESTROY, PRIM_CREATE, PRIM_DESTROY, MEM_CREATE, MEM_DESTROY, EXECUTE, STREAM_WAIT;
    private static final MemorySegment ENGINE;

    static {
        MethodHandle[] h = new MethodHandle[13];
        MemorySegment engine = null;
        try {
            SymbolLookup lib = lookup();
            Linker l = Linker.nativeLinker();
            String[] names = {"dnnl_engine_create", "dnnl_stream_create", "dnnl_memory_desc_create_with_tag",
                    "dnnl_memory_desc_destroy", "dnnl_eltwise_forward_primitive_desc_create",
                    "dnnl_softmax_forward_primitive_desc_create", "dnnl_primitive_desc_destroy", "dnnl_primitive_create",
                    "dnnl_primitive_destroy", "dnnl_memory_create", "dnnl_memory_destroy", "dnnl_primitive_execute",
                    "dnnl_stream_wait"};
            FunctionDescriptor[] fds = {
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_FLOAT,
                            JAVA_FLOAT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS)};
            for (int i = 0; i < names.length; i++) {
                Optional<MemorySegment> s = lib == null ? Optional.empty() : lib.find(names[i]);
                if (s.isEmpty()) throw new IllegalStateException("symbol " + names[i] + " not found");
                h[i] = l.downcallHandle(s.get(), fds[i]);
            }
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(ADDRESS);
                check((int) h[0].invokeExact(out, dnnl.dnnl_cpu, 0L), "dnnl_engine_create");
                engine = out.get(ADDRESS, 0);
            }
        } catch (Throwable t) {
            LOG.info("oneDNN primitives unavailable through FFM (" + t + "); the Java kernels are used");
            java.util.Arrays.fill(h, null);
            engine = null;
        }
        ENGINE_CREATE = h[0]; STREAM_CREATE = h[1]; MD_CREATE = h[2]; MD_DESTROY = h[3]; ELTWISE_PD = h[4];
        SOFTMAX_PD = h[5]; PD_DESTROY = h[6]; PRIM_CREATE = h[7]; PRIM_DESTROY = h[8]; MEM_CREATE = h[9];
        MEM_DESTROY = h[10]; EXECUTE = h[11]; STREAM_WAIT = h[12];
        ENGINE = engine;
    }

    private DnnlPrimitives() {}

    /** True when the primitives can run now (symbols found, engine created, FFM into oneDNN allowed). */
    static boolean available() { return ENGINE != null && DnnlBlas.ffm(); }

    /** A primitive with the memory descriptor of its (in-place) source and destination. */
    private record Prim(MemorySegment primitive, MemorySegment md) {}

    /** Per thread: the stream and the primitives by shape (LRU). */
    private static final class PerThread {
        final MemorySegment stream;
        final Map<String, Prim> prims = new LinkedHashMap<>(16, 0.75f, true);

        PerThread() {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(ADDRESS);
                check((int) STREAM_CREATE.invokeExact(out, ENGINE, 1 /* dnnl_stream_default_flags */), "dnnl_stream_create");
                stream = out.get(ADDRESS, 0);
            } catch (Throwable t) {
                throw t instanceof RuntimeException r ? r : new IllegalStateException(t);
            }
        }
    }

    private static final ThreadLocal<PerThread> LOCAL = ThreadLocal.withInitial(PerThread::new);

    /**
     * In place: tanh-approximated GELU (oneDNN eltwise_gelu_tanh, torch's approximate="tanh") of n floats at buf.
     * False when the primitives are not available (nothing was done).
     */
    static boolean geluTanh(MemorySegment buf, long n) {
        if (n == 0) return true;
        checkBuffer(buf, n);
        return run("gelu:" + n, buf, () -> eltwisePd(dnnl.dnnl_eltwise_gelu_tanh, n));
    }

    /** In place: softmax over each row of a row-major rows x cols float matrix at buf. False when not available. */
    static boolean softmaxRows(MemorySegment buf, int rows, int cols) {
        if (rows == 0 || cols == 0) return true;
        checkBuffer(buf, (long) rows * cols);
        return run("softmax:" + rows + "x" + cols, buf, () -> softmaxPd(rows, cols));
    }

    private static void checkBuffer(MemorySegment buf, long n) {
        if (!buf.isNative() || buf.byteSize() < n * Float.BYTES) throw new IllegalArgumentException(
                "oneDNN primitive: native buffer of " + buf.byteSize() + " bytes for " + n + " floats");
    }

    @FunctionalInterface
    private interface PdMaker { MemorySegment[] make() throws Throwable; }

    /** Executes the cached (or new) primitive for key on buf, in place, under DnnlBlas's zero-copy read lock. */
    private static boolean run(String key, MemorySegment buf, PdMaker maker) {
        if (ENGINE == null) return false;
        return DnnlBlas.underFfmLock(() -> {
            PerThread pt = LOCAL.get();
            Prim p = pt.prims.get(key);
            try {
                if (p == null) {
                    p = create(maker);
                    pt.prims.put(key, p);
                    if (pt.prims.size() > CACHE) {
                        var it = pt.prims.entrySet().iterator();
                        Prim old = it.next().getValue();
                        it.remove();
                        destroy(old);
                    }
                }
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment memOut = a.allocate(ADDRESS);
                    check((int) MEM_CREATE.invokeExact(memOut, p.md(), ENGINE, buf), "dnnl_memory_create");
                    MemorySegment mem = memOut.get(ADDRESS, 0);
                    try {
                        MemorySegment args = a.allocate(MemoryLayout.sequenceLayout(2,
                                MemoryLayout.structLayout(JAVA_INT, MemoryLayout.paddingLayout(4), ADDRESS)));
                        args.set(JAVA_INT, 0, ARG_SRC);
                        args.set(ADDRESS, 8, mem);
                        args.set(JAVA_INT, 16, ARG_DST);
                        args.set(ADDRESS, 24, mem);
                        check((int) EXECUTE.invokeExact(p.primitive(), pt.stream, 2, args), "dnnl_primitive_execute");
                        check((int) STREAM_WAIT.invokeExact(pt.stream), "dnnl_stream_wait");
                    } finally {
                        check((int) MEM_DESTROY.invokeExact(mem), "dnnl_memory_destroy");
                    }
                }
            } catch (RuntimeException e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException("oneDNN primitive " + key + " failed", t);
            }
        });
    }

    /** Creates the primitive from the {primitive_desc, memory_desc} the maker returns (the desc is destroyed). */
    private static Prim create(PdMaker maker) throws Throwable {
        MemorySegment[] pdMd = maker.make();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) PRIM_CREATE.invokeExact(out, pdMd[0]), "dnnl_primitive_create");
            return new Prim(out.get(ADDRESS, 0), pdMd[1]);
        } finally {
            check((int) PD_DESTROY.invokeExact(pdMd[0]), "dnnl_primitive_desc_destroy");
        }
    }

    private static void destroy(Prim p) throws Throwable {
        check((int) PRIM_DESTROY.invokeExact(p.primitive()), "dnnl_primitive_destroy");
        check((int) MD_DESTROY.invokeExact(p.md()), "dnnl_memory_desc_destroy");
    }

    private static MemorySegment memDesc(long... dims) throws Throwable {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            MemorySegment d = a.allocate(JAVA_LONG, 12);   // dnnl_dims_t: DNNL_MAX_NDIMS (12) int64s
            for (int i = 0; i < dims.length; i++) d.setAtIndex(JAVA_LONG, i, dims[i]);
            int tag = dims.length == 1 ? dnnl.dnnl_a : dnnl.dnnl_ab;
            check((int) MD_CREATE.invokeExact(out, dims.length, d, dnnl.dnnl_f32, tag), "dnnl_memory_desc_create_with_tag");
            return out.get(ADDRESS, 0);
        }
    }

    private static MemorySegment[] eltwisePd(int alg, long n) throws Throwable {
        MemorySegment md = memDesc(n);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) ELTWISE_PD.invokeExact(out, ENGINE, dnnl.dnnl_forward_inference, alg, md, md, 0f, 0f,
                    MemorySegment.NULL), "dnnl_eltwise_forward_primitive_desc_create");
            return new MemorySegment[] {out.get(ADDRESS, 0), md};
        } catch (Throwable t) {
            MD_DESTROY.invokeExact(md);
            throw t;
        }
    }

    private static MemorySegment[] softmaxPd(int rows, int cols) throws Throwable {
        MemorySegment md = memDesc(rows, cols);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) SOFTMAX_PD.invokeExact(out, ENGINE, dnnl.dnnl_forward_inference, dnnl.dnnl_softmax_accurate, md, md,
                    1, MemorySegment.NULL), "dnnl_softmax_forward_primitive_desc_create");
            return new MemorySegment[] {out.get(ADDRESS, 0), md};
        } catch (Throwable t) {
            MD_DESTROY.invokeExact(md);
            throw t;
        }
    }

    private static void check(int status, String what) {
        if (status != 0) throw new IllegalStateException(what + " failed with oneDNN status " + status);
    }

    /** The loaded oneDNN library (JavaCPP loads it; its symbols are found by name or by the library's path). */
    private static SymbolLookup lookup() throws Exception {
        String jni = Loader.load(dnnl.class);
        SymbolLookup loader = SymbolLookup.loaderLookup();
        if (loader.find("dnnl_primitive_execute").isPresent()) return loader;
        if (jni == null) return null;
        try (Stream<Path> files = Files.list(Path.of(jni).getParent())) {
            Path lib = files.filter(p -> p.getFileName().toString().matches("(lib)?dnnl[.0-9]*\\.(so|dll|dylib)[.0-9]*"))
                    .findFirst().orElse(null);
            return lib == null ? null : SymbolLookup.libraryLookup(lib, Arena.global());
        }
    }
}
