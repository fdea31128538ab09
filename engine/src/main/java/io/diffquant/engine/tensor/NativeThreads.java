package io.diffquant.engine.tensor;

import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.javacpp.Loader;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * The OpenMP thread count that oneDNN's GEMMs use on the calling thread (libgomp's per-thread
 * {@code omp_set_num_threads}). Lets engine worker threads run many small GEMMs side by side, each
 * single-threaded, instead of one after the other with an OpenMP fork/join each.
 */
public final class NativeThreads {
    private static final Logger LOG = Logger.getLogger(NativeThreads.class.getName());
    private static final MethodHandle GET_MAX, SET_NUM;

    static {
        MethodHandle g = null, s = null;
        try {
            DnnlBlas.zeroCopy(); // DnnlBlas's class init sets the OpenMP environment defaults before libgomp loads
            String jni = Loader.load(dnnl.class);
            Linker linker = Linker.nativeLinker();
            Optional<MemorySegment> gs = SymbolLookup.loaderLookup().find("omp_get_max_threads");
            Optional<MemorySegment> ss = SymbolLookup.loaderLookup().find("omp_set_num_threads");
            if ((gs.isEmpty() || ss.isEmpty()) && jni != null) {
                try (Stream<Path> files = Files.list(Path.of(jni).getParent())) {
                    Path lib = files.filter(p -> p.getFileName().toString().matches("(lib)?gomp[.0-9]*\\.(so|dll|dylib)[.0-9]*"))
                            .findFirst().orElse(null);
                    if (lib != null) {
                        SymbolLookup l = SymbolLookup.libraryLookup(lib, Arena.global());
                        gs = l.find("omp_get_max_threads");
                        ss = l.find("omp_set_num_threads");
                    }
                }
            }
            if (gs.isPresent() && ss.isPresent()) {
                g = linker.downcallHandle(gs.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT));
                s = linker.downcallHandle(ss.get(), FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
            }
        } catch (Throwable t) {
            LOG.fine("OpenMP thread control unavailable (" + t + ")");
            g = null;
            s = null;
        }
        GET_MAX = g;
        SET_NUM = s;
    }

    private NativeThreads() {}

    /**
     * True when the native GEMM's thread count can be set per calling thread: the OpenMP entry points were found and no
     * JFR recorder exists (FFM downcalls under JFR corrupted the native heap, see {@link DnnlBlas}; every call here
     * also runs under DnnlBlas's FFM lock, so a recorder created meanwhile waits for it).
     */
    public static boolean available() { return GET_MAX != null && SET_NUM != null && DnnlBlas.ffm(); }

    /**
     * Sets the OpenMP thread count of the native GEMMs called from this thread (e.g. a benchmark's main thread that
     * must use as many threads as the engine's pool); false when that cannot be controlled.
     */
    public static boolean setCallerThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("native GEMM threads must be >= 1, got " + n);
        if (!available()) return false;
        return DnnlBlas.underFfmLock(() -> setNum(n));
    }

    private static void setNum(int n) {
        try {
            SET_NUM.invokeExact(n);
        } catch (Throwable t) {
            throw new IllegalStateException("omp_set_num_threads failed", t);
        }
    }

    /** Runs body with the native GEMMs of this thread single-threaded (restored afterwards); plain run if unavailable. */
    public static void singleThreaded(Runnable body) {
        if (!available()) {
            body.run();
            return;
        }
        int[] prev = {-1};
        boolean set = DnnlBlas.underFfmLock(() -> {
            try {
                prev[0] = (int) GET_MAX.invokeExact();
            } catch (Throwable t) {
                throw new IllegalStateException("omp_get_max_threads failed", t);
            }
            setNum(1);
        });
        try {
            body.run();
        } finally {
            // skipped when a JFR recorder appeared meanwhile (then no FFM call may run; the GEMMs go through JavaCPP)
            if (set) {
                try {
                    DnnlBlas.underFfmLock(() -> setNum(prev[0]));
                } catch (RuntimeException t) {
                    LOG.warning("could not restore the OpenMP thread count: " + t);
                }
            }
        }
    }
}
