package io.diffquant.engine.tensor;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.dnnl.global.dnnl;

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
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * oneDNN's row-major sgemm (org.bytedeco:dnnl, loaded by JavaCPP), called in one of two ways:
 * <ul>
 *   <li>zero-copy (default): a Java FFM "critical" downcall hands the heap arrays (with their offsets) to
 *       oneDNN in place. A critical call keeps the thread in the Java state, so JFR's execution sampler would
 *       interrupt it inside oneDNN as if it ran Java code, which corrupts the native heap (seen every time).
 *       Zero-copy is therefore used only while no JFR recorder exists: a recorder listener switches it off
 *       for good, waiting for the calls in flight, before any recording can start. Calls are cut into row
 *       blocks of at most about 2 GFLOP because a critical call also holds off safepoints (GC) while it runs.
 *       Large GEMMs called from outside the engine's pool are split by rows over the pool, each part a
 *       single-threaded oneDNN call (see {@link NativeThreads}): no OpenMP fork/join per GEMM.</li>
 *   <li>JavaCPP's float[] entry points (once JFR exists, with {@code diffquant.blas.zerocopy=false}, or when
 *       FFM is unavailable): they copy every whole array in and out on each call and take no offsets, so
 *       offset operands go through contiguous copies. (Non-critical FFM calls on native staging buffers were
 *       tried too: under JFR they also corrupted the native heap, in DiT runs with several engine threads; so
 *       {@link #ffm()}, which gates {@link #sgemmNative}, also turns false once JFR exists.)</li>
 * </ul>
 * <p>Before oneDNN (and its libgomp) is loaded, {@code OMP_WAIT_POLICY=PASSIVE} is put into the process
 * environment unless it is already set: with libgomp's default spinning, the idle OpenMP workers keep the
 * cores while the engine's own pool runs the element-wise work between GEMMs, which made a DiT-S/2 forward
 * on a loaded 2-core machine up to 15x slower.
 */
public final class DnnlBlas implements Blas {
    private static final Logger LOG = Logger.getLogger(DnnlBlas.class.getName());
    private static final byte N = (byte) 'N';
    private static final byte T = (byte) 'T';

    /** dnnl_status_t dnnl_sgemm(char, char, dim_t M, N, K, float alpha, const float *A, dim_t lda, ...). */
    private static final MethodHandle SGEMM = downcall(false);
    /** The same function as a critical call that may take heap segments. */
    private static final MethodHandle SGEMM_HEAP = SGEMM == null ? null : downcall(true);
    /** Zero-copy GEMMs of at least this many FLOPs called from outside the engine pool are split over it. */
    private static final double SPLIT_FLOPS = 5e7;
    /** At most about this many FLOPs per critical call (it holds off safepoints while it runs). */
    private static final double CRITICAL_FLOPS = 2e9;

    /** Readers: zero-copy calls in flight. Writer: switching zero-copy off. */
    private static final ReentrantReadWriteLock ZERO_COPY_LOCK = new ReentrantReadWriteLock();
    private static volatile boolean jfrSeen = !JfrGuard.install();
    private static volatile boolean zeroCopy = SGEMM_HEAP != null && EngineSettings.blasZeroCopy() && !jfrSeen;

    /** Switches zero-copy off for good once a JFR recorder is created (see the class comment). */
    private static final class JfrGuard {
        static boolean install() {
            try {
                jdk.jfr.FlightRecorder.addListener(new jdk.jfr.FlightRecorderListener() {
                    @Override public void recorderInitialized(jdk.jfr.FlightRecorder recorder) {
                        disableZeroCopy("a JFR recorder was created");
                    }
                });
                return !jdk.jfr.FlightRecorder.isInitialized();
            } catch (LinkageError e) {
                return true;      // no jdk.jfr module in this runtime: no JFR sampler either
            } catch (RuntimeException e) {
                LOG.info("cannot watch for JFR (" + e + "); oneDNN is called through JavaCPP");
                return false;
            }
        }
    }

    static void disableZeroCopy(String why) {
        jfrSeen = true;
        boolean was;
        // always through the write lock: it also waits for the FFM calls of DnnlPrimitives / sgemmSegments in flight
        ZERO_COPY_LOCK.writeLock().lock();
        try {
            was = zeroCopy;
            zeroCopy = false;
        } finally {
            ZERO_COPY_LOCK.writeLock().unlock();
        }
        if (was) LOG.info(why + ": oneDNN is now called through JavaCPP (copies, no zero-copy)");
    }

    /**
     * Runs body (FFM calls into oneDNN on native memory) under the zero-copy read lock unless a JFR recorder exists;
     * false (body not run) then. body must not wait for other threads that take this lock.
     */
    static boolean underFfmLock(Runnable body) {
        ZERO_COPY_LOCK.readLock().lock();
        try {
            if (jfrSeen || SGEMM == null) return false;
            body.run();
            return true;
        } finally {
            ZERO_COPY_LOCK.readLock().unlock();
        }
    }

    /** True when {@link #sgemmSegments} can run now (zero-copy on: no JFR recorder, FFM critical calls available). */
    static boolean segmentsAvailable() { return zeroCopy && !jfrSeen; }

    /**
     * GEMM on operands that may each be a heap segment (of a float[]) or native memory, row-major with leading
     * dimensions in floats, through the critical downcall; split by rows over the engine pool like {@link #sgemm}.
     * Returns false when zero-copy is (or was switched) off: C may then be partly written, the caller must redo
     * the computation another way.
     */
    static boolean sgemmSegments(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a, long lda,
                                 MemorySegment b, long ldb, float beta, MemorySegment c, long ldc) {
        if (m == 0 || n == 0) return true;
        checkSegment("A", a, transA ? k : m, transA ? m : k, lda);
        checkSegment("B", b, transB ? n : k, transB ? k : n, ldb);
        checkSegment("C", c, m, n, ldc);
        if (!zeroCopy) return false;
        int parts = Parallel.threads();
        if (parts > 1 && m >= 128 * parts && 2.0 * m * n * k >= SPLIT_FLOPS
                && !(Thread.currentThread() instanceof ForkJoinWorkerThread) && NativeThreads.available()) {
            java.util.concurrent.atomic.AtomicBoolean ok = new java.util.concurrent.atomic.AtomicBoolean(true);
            Parallel.forRange(parts, 1, (p0, p1) -> NativeThreads.singleThreaded(() -> {
                for (int p = p0; p < p1; p++) {
                    int r0 = (int) ((long) m * p / parts), r1 = (int) ((long) m * (p + 1) / parts);
                    long aAt = transA ? r0 : (long) r0 * lda;
                    if (!segmentsLocked(transA, transB, r1 - r0, n, k, alpha, a.asSlice(aAt * Float.BYTES), lda, b, ldb, beta,
                            c.asSlice((long) r0 * ldc * Float.BYTES), ldc)) ok.set(false);
                }
            }));
            return ok.get();
        }
        return segmentsLocked(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    private static boolean segmentsLocked(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a,
                                          long lda, MemorySegment b, long ldb, float beta, MemorySegment c, long ldc) {
        ZERO_COPY_LOCK.readLock().lock();
        try {
            if (!zeroCopy) return false;
            criticalRowBlocks(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return true;
        } finally {
            ZERO_COPY_LOCK.readLock().unlock();
        }
    }

    /** A rows x cols matrix with row stride ld (floats) must lie inside its segment. */
    private static void checkSegment(String what, MemorySegment s, long rows, long cols, long ld) {
        if (rows == 0 || cols == 0) return;
        if (ld < cols || Float.BYTES * ((rows - 1) * ld + cols) > s.byteSize())
            throw new IllegalArgumentException("sgemm: matrix " + what + " of " + rows + "x" + cols + " with stride "
                    + ld + " does not fit its segment of " + s.byteSize() + " bytes");
    }

    /** Critical calls in row blocks of C of at most about CRITICAL_FLOPS each (a critical call holds off safepoints). */
    private static void criticalRowBlocks(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment as,
                                          long lda, MemorySegment bs, long ldb, float beta, MemorySegment cs, long ldc) {
        int rows = (int) Math.max(64, Math.min(m, CRITICAL_FLOPS / (2.0 * n * Math.max(1, k))));
        for (int i0 = 0; i0 < m; i0 += rows) {
            int mm = Math.min(rows, m - i0);
            long aAt = transA ? i0 : (long) i0 * lda;
            int st;
            try {
                st = (int) SGEMM_HEAP.invokeExact(transA ? T : N, transB ? T : N, (long) mm, (long) n, (long) k, alpha,
                        as.asSlice(aAt * Float.BYTES), lda, bs, ldb, beta, cs.asSlice((long) i0 * ldc * Float.BYTES), ldc);
            } catch (Throwable e) {
                throw new IllegalStateException("oneDNN sgemm call failed", e);
            }
            if (st != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st
                    + " for m=" + mm + " n=" + n + " k=" + k);
        }
    }

    public DnnlBlas() {
        // force native loading now so that failures surface at construction
        float[] a = {1f}, b = {2f}, c = {0f};
        int st = dnnl.dnnl_sgemm(N, N, 1, 1, 1, 1f, a, 1, b, 1, 0f, c, 1);
        if (st != 0 || c[0] != 2f) throw new IllegalStateException("oneDNN sgemm self-test failed (status " + st + ")");
        if (zeroCopy) {
            c[0] = 0f;
            sgemm(false, false, 1, 1, 1, 1f, a, 0, 1, b, 0, 1, 0f, c, 0, 1);
            if (c[0] != 2f) throw new IllegalStateException("oneDNN sgemm (zero-copy) self-test failed");
        }
    }

    @Override public String name() { return "onednn"; }

    /** True while calls hand the Java arrays to oneDNN in place (FFM critical calls). */
    public static boolean zeroCopy() { return zeroCopy; }

    /**
     * True when {@link #sgemmNative} may be used: FFM downcalls are available and no JFR recorder exists (in this
     * engine's runs with several threads, FFM calls on native buffers also corrupted the native heap under JFR).
     */
    public static boolean ffm() { return SGEMM != null && !jfrSeen; }

    /**
     * GEMM on operands that are already in native memory (row-major, leading dimensions in floats), for kernels that
     * build an operand off-heap themselves (ConvOps' im2col) and so skip its staging copy. Needs {@link #ffm()}.
     */
    public static void sgemmNative(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a, long lda,
                                   MemorySegment b, long ldb, float beta, MemorySegment c, long ldc) {
        if (SGEMM == null) throw new IllegalStateException("sgemmNative needs the FFM downcall to oneDNN");
        if (m == 0 || n == 0) return;
        checkNative("A", a, transA ? k : m, transA ? m : k, lda);
        checkNative("B", b, transB ? n : k, transB ? k : n, ldb);
        checkNative("C", c, m, n, ldc);
        int[] st = {0};
        // under the FFM lock: a JFR recorder created meanwhile waits for this call; once one exists, copies through JavaCPP
        boolean done = underFfmLock(() -> {
            try {
                st[0] = (int) SGEMM.invokeExact(transA ? T : N, transB ? T : N, (long) m, (long) n, (long) k, alpha, a, lda, b, ldb,
                        beta, c, ldc);
            } catch (Throwable e) {
                throw new IllegalStateException("oneDNN sgemm call failed", e);
            }
        });
        if (!done) {
            float[] ha = heapCopy(a, transA ? k : m, lda), hb = heapCopy(b, transB ? n : k, ldb), hc = heapCopy(c, m, ldc);
            st[0] = dnnl.dnnl_sgemm(transA ? T : N, transB ? T : N, m, n, k, alpha, ha, lda, hb, ldb, beta, hc, ldc);
            MemorySegment.copy(hc, 0, c, ValueLayout.JAVA_FLOAT, 0, hc.length);
        }
        if (st[0] != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st[0] + " for m=" + m + " n=" + n + " k=" + k);
    }

    /** The first (rows - 1) * ld + ld floats of a native matrix (clipped to its segment), on the heap. */
    private static float[] heapCopy(MemorySegment s, long rows, long ld) {
        long n = Math.min(rows * ld, s.byteSize() / Float.BYTES);
        float[] h = new float[Math.toIntExact(n)];
        MemorySegment.copy(s, ValueLayout.JAVA_FLOAT, 0, h, 0, h.length);
        return h;
    }

    /** A native rows x cols matrix with row stride ld must lie inside its segment. */
    private static void checkNative(String what, MemorySegment s, long rows, long cols, long ld) {
        if (rows == 0 || cols == 0) return;
        if (!s.isNative() || ld < cols || Float.BYTES * ((rows - 1) * ld + cols) > s.byteSize())
            throw new IllegalArgumentException("sgemm: native matrix " + what + " of " + rows + "x" + cols + " with stride "
                    + ld + " does not fit its segment of " + s.byteSize() + " bytes");
    }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        if (m == 0 || n == 0) return;
        checkExtent("A", a, aOff, transA ? k : m, transA ? m : k, lda);
        checkExtent("B", b, bOff, transB ? n : k, transB ? k : n, ldb);
        checkExtent("C", c, cOff, m, n, ldc);
        if (zeroCopy) {
            int parts = Parallel.threads();
            if (parts > 1 && m >= 128 * parts && 2.0 * m * n * k >= SPLIT_FLOPS
                    && !(Thread.currentThread() instanceof ForkJoinWorkerThread) && NativeThreads.available()) {
                // rows over the engine's pool, each part a single-threaded oneDNN call: no OpenMP fork/join
                Parallel.forRange(parts, 1, (p0, p1) -> NativeThreads.singleThreaded(() -> {
                    for (int p = p0; p < p1; p++) {
                        int r0 = (int) ((long) m * p / parts), r1 = (int) ((long) m * (p + 1) / parts);
                        int aAt = transA ? aOff + r0 : aOff + r0 * lda;
                        if (!tryInPlace(transA, transB, r1 - r0, n, k, alpha, a, aAt, lda, b, bOff, ldb, beta, c, cOff + r0 * ldc, ldc))
                            viaJavaCpp(transA, transB, r1 - r0, n, k, alpha, a, aAt, lda, b, bOff, ldb, beta, c, cOff + r0 * ldc, ldc);
                    }
                }));
                return;
            }
            if (tryInPlace(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc)) return;
        }
        viaJavaCpp(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    }

    /** The zero-copy call, unless zero-copy has been switched off (then false). */
    private static boolean tryInPlace(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                      float beta, float[] c, int cOff, int ldc) {
        ZERO_COPY_LOCK.readLock().lock();
        try {
            if (!zeroCopy) return false;
            sgemmInPlace(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            return true;
        } finally {
            ZERO_COPY_LOCK.readLock().unlock();
        }
    }

    /**
     * JavaCPP's float[] entry points copy each whole array in and back out, and take no offsets. So operands with
     * an offset go through contiguous copies, and C goes through a private m x n buffer unless the GEMM owns all of
     * it: writing back the whole array would undo what other threads' GEMMs wrote into other parts of it.
     */
    private static void viaJavaCpp(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                   float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                   float beta, float[] c, int cOff, int ldc) {
        float[] ac = aOff == 0 ? a : copyBlock(a, aOff, transA ? k : m, lda);
        float[] bc = bOff == 0 ? b : copyBlock(b, bOff, transB ? n : k, ldb);
        if (cOff == 0 && ldc == n && c.length == m * n) {
            call(transA, transB, m, n, k, alpha, ac, lda, bc, ldb, beta, c, ldc);
            return;
        }
        float[] cc = new float[m * n];
        if (beta != 0f) for (int i = 0; i < m; i++) System.arraycopy(c, cOff + i * ldc, cc, i * n, n);
        call(transA, transB, m, n, k, alpha, ac, lda, bc, ldb, beta, cc, n);
        for (int i = 0; i < m; i++) System.arraycopy(cc, i * n, c, cOff + i * ldc, n);
    }

    /** Critical calls on the heap arrays, in row blocks of C of at most about CRITICAL_FLOPS each. */
    private static void sgemmInPlace(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                     float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                     float beta, float[] c, int cOff, int ldc) {
        int rows = (int) Math.max(64, Math.min(m, CRITICAL_FLOPS / (2.0 * n * Math.max(1, k))));
        MemorySegment as = MemorySegment.ofArray(a), bs = MemorySegment.ofArray(b), cs = MemorySegment.ofArray(c);
        if (bOff != 0) bs = bs.asSlice((long) bOff * Float.BYTES);
        for (int i0 = 0; i0 < m; i0 += rows) {
            int mm = Math.min(rows, m - i0);
            long aAt = transA ? aOff + (long) i0 : aOff + (long) i0 * lda;
            int st;
            try {
                st = (int) SGEMM_HEAP.invokeExact(transA ? T : N, transB ? T : N, (long) mm, (long) n, (long) k, alpha,
                        as.asSlice(aAt * Float.BYTES), (long) lda, bs, (long) ldb, beta,
                        cs.asSlice((cOff + (long) i0 * ldc) * Float.BYTES), (long) ldc);
            } catch (Throwable e) {
                throw new IllegalStateException("oneDNN sgemm call failed", e);
            }
            if (st != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st
                    + " for m=" + mm + " n=" + n + " k=" + k);
        }
    }

    /** A stored matrix of rows x cols with row stride ld must lie inside x from off on. */
    private static void checkExtent(String what, float[] x, int off, int rows, int cols, int ld) {
        if (rows == 0 || cols == 0) return;
        if (ld < cols || off < 0 || (long) off + (long) (rows - 1) * ld + cols > x.length)
            throw new IllegalArgumentException("sgemm: matrix " + what + " of " + rows + "x" + cols + " with stride " + ld
                    + " at offset " + off + " does not fit its array of " + x.length);
    }

    private static float[] copyBlock(float[] x, int off, int rows, int ld) {
        float[] r = new float[rows == 0 ? 0 : (rows - 1) * ld + ld];
        System.arraycopy(x, off, r, 0, Math.min(r.length, x.length - off));
        return r;
    }

    private static void call(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc) {
        int st = dnnl.dnnl_sgemm(transA ? T : N, transB ? T : N, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (st != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st
                + " for m=" + m + " n=" + n + " k=" + k);
    }

    /** setenv(name, value, 0) in the native process environment (no-op where libc has no setenv). */
    private static void setDefaultEnv(String name, String value) {
        try {
            Linker linker = Linker.nativeLinker();
            Optional<MemorySegment> setenv = linker.defaultLookup().find("setenv");
            if (setenv.isEmpty()) return;
            MethodHandle h = linker.downcallHandle(setenv.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            try (Arena a = Arena.ofConfined()) {
                int rc = (int) h.invokeExact(a.allocateFrom(name), a.allocateFrom(value), 0);
                if (rc != 0) LOG.fine("setenv(" + name + ") returned " + rc);
            }
        } catch (Throwable t) {
            LOG.fine("could not set " + name + " (" + t + ")");
        }
    }

    private static MethodHandle downcall(boolean heap) {
        setDefaultEnv("OMP_WAIT_POLICY", "PASSIVE");
        try {
            String jni = Loader.load(dnnl.class);
            Optional<MemorySegment> sym = SymbolLookup.loaderLookup().find("dnnl_sgemm");
            if (sym.isEmpty() && jni != null) {
                Path dir = Path.of(jni).getParent();
                try (Stream<Path> files = Files.list(dir)) {
                    Path lib = files.filter(p -> p.getFileName().toString().matches("(lib)?dnnl[.0-9]*\\.(so|dll|dylib)[.0-9]*"))
                            .findFirst().orElse(null);
                    if (lib != null) sym = SymbolLookup.libraryLookup(lib, Arena.global()).find("dnnl_sgemm");
                }
            }
            if (sym.isEmpty()) {
                LOG.info("dnnl_sgemm symbol not found for FFM; oneDNN is called through JavaCPP");
                return null;
            }
            FunctionDescriptor fd = FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_BYTE, ValueLayout.JAVA_BYTE,
                    ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_FLOAT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_FLOAT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG);
            return heap ? Linker.nativeLinker().downcallHandle(sym.get(), fd, Linker.Option.critical(true))
                    : Linker.nativeLinker().downcallHandle(sym.get(), fd);
        } catch (Throwable t) {
            LOG.info("FFM downcall to oneDNN unavailable (" + t + "); oneDNN is called through JavaCPP");
            return null;
        }
    }
}
