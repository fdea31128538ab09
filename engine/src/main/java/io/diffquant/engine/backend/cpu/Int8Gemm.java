package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.tensor.DnnlBlas;
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
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * oneDNN's integer GEMM {@code dnnl_gemm_s8s8s32} (oneDNN C API, dnnl.h "BLAS functions"): row-major
 * C[m, n] (s32) = A[m, k] (s8) * B[n, k]^T (s8), exact integer arithmetic. Called the way {@code tensor.DnnlBlas} calls
 * sgemm: a Java FFM "critical" downcall that hands the heap arrays to oneDNN in place (zero-copy), and JavaCPP's
 * copying array entry points once a JFR recorder exists (a critical call keeps the thread in the Java state, so JFR's
 * sampler would interrupt it inside oneDNN and corrupt the native heap; see DnnlBlas). A listener switches zero-copy
 * off for good before any recording starts, waiting for the calls in flight.
 */
public final class Int8Gemm {
    private static final Logger LOG = Logger.getLogger(Int8Gemm.class.getName());
    private static final byte N = (byte) 'N', T = (byte) 'T', FIXED = (byte) 'F';
    /** Critical downcall of dnnl_gemm_s8s8s32, or null without FFM / the symbol. */
    private static final MethodHandle GEMM = downcall();
    /** The zero column offset {@code co} (offsetc 'F': one value added to all of C). */
    private static final MemorySegment ZERO_OFFSET = Arena.global().allocate(Integer.BYTES, 64);
    private static final int[] ZERO_OFFSET_ARRAY = {0};
    private static final ReentrantReadWriteLock LOCK = new ReentrantReadWriteLock();
    private static volatile boolean zeroCopy = GEMM != null && DnnlBlas.zeroCopy() && JfrGuard.install();
    private static final String UNAVAILABLE = selfTest();

    private Int8Gemm() {}

    /** Switches zero-copy off for good once a JFR recorder is created. */
    private static final class JfrGuard {
        static boolean install() {
            try {
                jdk.jfr.FlightRecorder.addListener(new jdk.jfr.FlightRecorderListener() {
                    @Override public void recorderInitialized(jdk.jfr.FlightRecorder recorder) { disableZeroCopy("a JFR recorder was created"); }
                });
                return !jdk.jfr.FlightRecorder.isInitialized();
            } catch (LinkageError e) {
                return true;      // no jdk.jfr module: no JFR sampler either
            } catch (RuntimeException e) {
                LOG.info("cannot watch for JFR (" + e + "); the int8 GEMM is called through JavaCPP");
                return false;
            }
        }
    }

    private static void disableZeroCopy(String why) {
        if (!zeroCopy) return;
        LOCK.writeLock().lock();
        try {
            zeroCopy = false;
        } finally {
            LOCK.writeLock().unlock();
        }
        LOG.info(why + ": the oneDNN int8 GEMM is now called through JavaCPP (copies, no zero-copy)");
    }

    /** Null when the integer GEMM can be called, else why not (oneDNN did not load, or its self-test failed). */
    public static String unavailableReason() { return UNAVAILABLE; }

    /** True while calls hand the Java arrays to oneDNN in place. */
    public static boolean zeroCopy() { return zeroCopy; }

    /**
     * c[i * ldc + j] = sum_p a[i * k + p] * b[j * k + p] for i < m, j < n: A is m x k and B is n x k, both row-major and
     * contiguous from index 0 (B = a Linear weight [out, in]); exact in int32 (k * 128 * 128 < 2^31 for k < 131072).
     */
    public static void gemm(int m, int n, int k, byte[] a, byte[] b, int[] c, int ldc) {
        if (m == 0 || n == 0) return;
        if (k < 1 || k >= 131072) throw new IllegalArgumentException("int8 GEMM: k = " + k + " (1..131071 keeps the int32 sums exact)");
        if ((long) m * k > a.length || (long) n * k > b.length || ldc < n || (long) (m - 1) * ldc + n > c.length)
            throw new IllegalArgumentException("int8 GEMM " + m + "x" + n + "x" + k + ": arrays of " + a.length + ", " + b.length + " and "
                    + c.length + " (ldc " + ldc + ") are too small");
        if (UNAVAILABLE != null) throw new IllegalStateException("the oneDNN int8 GEMM is not available: " + UNAVAILABLE);
        int st;
        LOCK.readLock().lock();
        try {
            if (zeroCopy) {
                try {
                    st = (int) GEMM.invokeExact(N, T, FIXED, (long) m, (long) n, (long) k, 1f, MemorySegment.ofArray(a), (long) k, (byte) 0,
                            MemorySegment.ofArray(b), (long) k, (byte) 0, 0f, MemorySegment.ofArray(c), (long) ldc, ZERO_OFFSET);
                } catch (Throwable e) {
                    throw new IllegalStateException("oneDNN int8 GEMM call failed", e);
                }
                check(st, m, n, k);
                return;
            }
        } finally {
            LOCK.readLock().unlock();
        }
        // JavaCPP copies every whole array in and out; the sizes must be exact for A and B, C may be larger
        byte[] ac = a.length == m * k ? a : java.util.Arrays.copyOf(a, m * k);
        byte[] bc = b.length == n * k ? b : java.util.Arrays.copyOf(b, n * k);
        st = dnnl.dnnl_gemm_s8s8s32(N, T, FIXED, m, n, k, 1f, ac, k, (byte) 0, bc, k, (byte) 0, 0f, c, ldc, ZERO_OFFSET_ARRAY);
        check(st, m, n, k);
    }

    private static void check(int st, int m, int n, int k) {
        if (st != 0) throw new IllegalStateException("oneDNN int8 GEMM failed with status " + st + " for m=" + m + " n=" + n + " k=" + k);
    }

    /** The plain-Java reference of {@link #gemm} (for tests and the benchmark's check). */
    public static void reference(int m, int n, int k, byte[] a, byte[] b, int[] c, int ldc) {
        for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
            int s = 0;
            for (int p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
            c[i * ldc + j] = s;
        }
    }

    private static String selfTest() {
        try {
            Loader.load(dnnl.class);
            int m = 3, n = 5, k = 70;
            byte[] a = new byte[m * k], b = new byte[n * k];
            java.util.Random r = new java.util.Random(7);
            for (int i = 0; i < a.length; i++) a[i] = (byte) (r.nextInt(256) - 128);
            for (int i = 0; i < b.length; i++) b[i] = (byte) (r.nextInt(256) - 128);
            int[] c = new int[m * n], want = new int[m * n];
            reference(m, n, k, a, b, want, n);
            // through the path calls will take (zero-copy or JavaCPP)
            gemmUnchecked(m, n, k, a, b, c, n);
            if (!java.util.Arrays.equals(c, want)) return "oneDNN dnnl_gemm_s8s8s32 self-test gave wrong sums";
            return null;
        } catch (Throwable t) {
            return "oneDNN did not load (" + t + ")";
        }
    }

    private static void gemmUnchecked(int m, int n, int k, byte[] a, byte[] b, int[] c, int ldc) throws Throwable {
        int st = zeroCopy
                ? (int) GEMM.invokeExact(N, T, FIXED, (long) m, (long) n, (long) k, 1f, MemorySegment.ofArray(a), (long) k, (byte) 0,
                        MemorySegment.ofArray(b), (long) k, (byte) 0, 0f, MemorySegment.ofArray(c), (long) ldc, ZERO_OFFSET)
                : dnnl.dnnl_gemm_s8s8s32(N, T, FIXED, m, n, k, 1f, a, k, (byte) 0, b, k, (byte) 0, 0f, c, ldc, ZERO_OFFSET_ARRAY);
        check(st, m, n, k);
    }

    private static MethodHandle downcall() {
        try {
            DnnlBlas.zeroCopy();   // DnnlBlas's class init sets OMP_WAIT_POLICY=PASSIVE before libgomp loads
            String jni = Loader.load(dnnl.class);
            Optional<MemorySegment> sym = SymbolLookup.loaderLookup().find("dnnl_gemm_s8s8s32");
            if (sym.isEmpty() && jni != null) {
                try (Stream<Path> files = Files.list(Path.of(jni).getParent())) {
                    Path lib = files.filter(p -> p.getFileName().toString().matches("(lib)?dnnl[.0-9]*\\.(so|dll|dylib)[.0-9]*"))
                            .findFirst().orElse(null);
                    if (lib != null) sym = SymbolLookup.libraryLookup(lib, Arena.global()).find("dnnl_gemm_s8s8s32");
                }
            }
            if (sym.isEmpty()) {
                LOG.info("dnnl_gemm_s8s8s32 not found for FFM; the int8 GEMM is called through JavaCPP");
                return null;
            }
            var J = ValueLayout.JAVA_LONG;
            var B = ValueLayout.JAVA_BYTE;
            var F = ValueLayout.JAVA_FLOAT;
            var A = ValueLayout.ADDRESS;
            FunctionDescriptor fd = FunctionDescriptor.of(ValueLayout.JAVA_INT, B, B, B, J, J, J, F, A, J, B, A, J, B, F, A, J, A);
            return Linker.nativeLinker().downcallHandle(sym.get(), fd, Linker.Option.critical(true));
        } catch (Throwable t) {
            LOG.info("FFM downcall to oneDNN's int8 GEMM unavailable (" + t + "); it is called through JavaCPP");
            return null;
        }
    }
}
