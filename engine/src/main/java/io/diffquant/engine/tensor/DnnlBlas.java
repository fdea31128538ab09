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
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * oneDNN's row-major sgemm (org.bytedeco:dnnl). The library is loaded by JavaCPP and called through a Java FFM
 * downcall on per-thread native staging buffers: the used part of each operand is copied in (row by row when
 * the row stride is larger than the row), C is copied out. JavaCPP's float[] entry points instead copy every
 * whole array into freshly allocated memory on each call, and take no offsets. The heap arrays are not handed
 * to oneDNN directly (an FFM "critical" call) because a GEMM is not a short call: JFR's execution sampler then
 * interrupts threads inside oneDNN (malloc) believing they run Java code, which corrupts the native heap.
 * If the FFM downcall cannot be made (native access denied), the JavaCPP entry points are used instead.
 * <p>Before oneDNN (and its libgomp) is loaded, {@code OMP_WAIT_POLICY=PASSIVE} is put into the process
 * environment unless it is already set: with libgomp's default spinning, the idle OpenMP workers keep the
 * cores while the engine's own pool runs the element-wise work between GEMMs, which made a DiT-S/2 forward
 * on a loaded 2-core machine up to 15x slower.
 */
public final class DnnlBlas implements Blas {
    private static final Logger LOG = Logger.getLogger(DnnlBlas.class.getName());
    private static final byte N = (byte) 'N';
    private static final byte T = (byte) 'T';
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT;

    /** dnnl_status_t dnnl_sgemm(char, char, dim_t M, N, K, float alpha, const float *A, dim_t lda, ...). */
    private static final MethodHandle SGEMM = downcall();

    /** Per-thread native staging memory, grown on demand and freed by the GC with its thread. */
    private static final ThreadLocal<Staging> STAGING = ThreadLocal.withInitial(Staging::new);

    private static final class Staging {
        MemorySegment seg = MemorySegment.NULL;

        MemorySegment get(long floats) {
            if (seg.byteSize() < floats * Float.BYTES) {
                long n = Math.max(floats, seg.byteSize() / Float.BYTES * 3 / 2);
                seg = Arena.ofAuto().allocate(n * Float.BYTES, 64);
            }
            return seg;
        }
    }

    public DnnlBlas() {
        // force native loading now so that failures surface at construction
        float[] a = {1f}, b = {2f}, c = {0f};
        int st = dnnl.dnnl_sgemm(N, N, 1, 1, 1, 1f, a, 1, b, 1, 0f, c, 1);
        if (st != 0 || c[0] != 2f) throw new IllegalStateException("oneDNN sgemm self-test failed (status " + st + ")");
        if (SGEMM != null) {
            c[0] = 0f;
            sgemm(false, false, 1, 1, 1, 1f, a, 0, 1, b, 0, 1, 0f, c, 0, 1);
            if (c[0] != 2f) throw new IllegalStateException("oneDNN sgemm (FFM) self-test failed");
        }
    }

    @Override public String name() { return "onednn"; }

    /** True when calls go through the FFM downcall (staged, offsets supported) rather than JavaCPP. */
    public static boolean ffm() { return SGEMM != null; }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        if (m == 0 || n == 0) return;
        int aRows = transA ? k : m, aCols = transA ? m : k, bRows = transB ? n : k, bCols = transB ? k : n;
        checkExtent("A", a, aOff, aRows, aCols, lda);
        checkExtent("B", b, bOff, bRows, bCols, ldb);
        checkExtent("C", c, cOff, m, n, ldc);
        if (SGEMM != null) {
            long aLen = (long) aRows * aCols, bLen = (long) bRows * bCols, cLen = (long) m * n;
            MemorySegment s = STAGING.get().get(aLen + bLen + cLen);
            long bAt = aLen * Float.BYTES, cAt = (aLen + bLen) * Float.BYTES;
            stageIn(a, aOff, aRows, aCols, lda, s, 0);
            stageIn(b, bOff, bRows, bCols, ldb, s, bAt);
            if (beta != 0f) stageIn(c, cOff, m, n, ldc, s, cAt);
            int st;
            try {
                st = (int) SGEMM.invokeExact(transA ? T : N, transB ? T : N, (long) m, (long) n, (long) k, alpha,
                        s, (long) Math.max(1, aCols), s.asSlice(bAt), (long) Math.max(1, bCols), beta, s.asSlice(cAt), (long) n);
            } catch (Throwable e) {
                throw new IllegalStateException("oneDNN sgemm call failed", e);
            }
            if (st != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st
                    + " for m=" + m + " n=" + n + " k=" + k);
            stageOut(s, cAt, m, n, c, cOff, ldc);
            return;
        }
        if (aOff != 0 || bOff != 0 || cOff != 0) {
            // the float[] entry points take no offsets: hand the work to contiguous copies
            float[] ac = copyBlock(a, aOff, aRows, lda);
            float[] bc = copyBlock(b, bOff, bRows, ldb);
            float[] cc = copyBlock(c, cOff, m, ldc);
            call(transA, transB, m, n, k, alpha, ac, lda, bc, ldb, beta, cc, ldc);
            System.arraycopy(cc, 0, c, cOff, Math.min(cc.length, c.length - cOff));
            return;
        }
        call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

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
        int st;
        try {
            st = (int) SGEMM.invokeExact(transA ? T : N, transB ? T : N, (long) m, (long) n, (long) k, alpha, a, lda, b, ldb,
                    beta, c, ldc);
        } catch (Throwable e) {
            throw new IllegalStateException("oneDNN sgemm call failed", e);
        }
        if (st != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st + " for m=" + m + " n=" + n + " k=" + k);
    }

    /** A native rows x cols matrix with row stride ld must lie inside its segment. */
    private static void checkNative(String what, MemorySegment s, long rows, long cols, long ld) {
        if (rows == 0 || cols == 0) return;
        if (!s.isNative() || ld < cols || Float.BYTES * ((rows - 1) * ld + cols) > s.byteSize())
            throw new IllegalArgumentException("sgemm: native matrix " + what + " of " + rows + "x" + cols + " with stride "
                    + ld + " does not fit its segment of " + s.byteSize() + " bytes");
    }

    /** Copies a rows x cols matrix with row stride ld from x[off..] to s at byte offset at, compactly. */
    private static void stageIn(float[] x, int off, int rows, int cols, int ld, MemorySegment s, long at) {
        if (ld == cols && (long) rows * cols < PARALLEL_COPY) {
            MemorySegment.copy(x, off, s, F32, at, rows * cols);
            return;
        }
        Parallel.forRange(rows, rowsPerTask(cols), (r0, r1) -> {
            if (ld == cols) MemorySegment.copy(x, off + r0 * ld, s, F32, at + (long) r0 * cols * Float.BYTES, (r1 - r0) * cols);
            else for (int i = r0; i < r1; i++)
                MemorySegment.copy(x, off + i * ld, s, F32, at + (long) i * cols * Float.BYTES, cols);
        });
    }

    /** Copies the compact rows x cols result at byte offset at of s into x[off..] with row stride ld. */
    private static void stageOut(MemorySegment s, long at, int rows, int cols, float[] x, int off, int ld) {
        Parallel.forRange(rows, rowsPerTask(cols), (r0, r1) -> {
            if (ld == cols) MemorySegment.copy(s, F32, at + (long) r0 * cols * Float.BYTES, x, off + r0 * ld, (r1 - r0) * cols);
            else for (int i = r0; i < r1; i++)
                MemorySegment.copy(s, F32, at + (long) i * cols * Float.BYTES, x, off + i * ld, cols);
        });
    }

    /** Copies of at least this many floats are split over the engine's threads. */
    private static final long PARALLEL_COPY = 1 << 18;

    private static int rowsPerTask(int cols) { return (int) Math.max(1, PARALLEL_COPY / 2 / Math.max(1, cols)); }

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

    private static MethodHandle downcall() {
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
                LOG.info("dnnl_sgemm symbol not found for FFM; using JavaCPP's copying entry points");
                return null;
            }
            FunctionDescriptor fd = FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_BYTE, ValueLayout.JAVA_BYTE,
                    ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_FLOAT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_FLOAT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG);
            return Linker.nativeLinker().downcallHandle(sym.get(), fd);
        } catch (Throwable t) {
            LOG.info("FFM downcall to oneDNN unavailable (" + t + "); using JavaCPP's copying entry points");
            return null;
        }
    }
}
