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
import java.nio.file.Path;
import java.util.Optional;

/**
 * oneDNN's row-major {@code dnnl_sgemm} called through the Foreign Function &amp; Memory API with critical
 * (heap-access) downcalls: the Java arrays are handed to oneDNN in place, with their offsets, instead of being
 * copied in and out on every call as JavaCPP's {@code float[]} entry points do (which made large GEMMs ~4x slower).
 * The library itself is the one JavaCPP extracts and loads for {@link DnnlBlas}.
 */
public final class DnnlFfmBlas implements Blas {
    private static final byte N = (byte) 'N';
    private static final byte T = (byte) 'T';
    private final MethodHandle sgemm;

    public DnnlFfmBlas() {
        Loader.load(dnnl.class);
        MemorySegment sym = find();
        FunctionDescriptor fd = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_BYTE, ValueLayout.JAVA_BYTE,
                ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_FLOAT,
                ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                ValueLayout.JAVA_FLOAT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG);
        sgemm = Linker.nativeLinker().downcallHandle(sym, fd, Linker.Option.critical(true));
        float[] a = {1f, 2f}, b = {3f, 4f}, c = {0f, 0f, 5f};
        sgemm(false, false, 1, 1, 1, 1f, a, 1, 1, b, 1, 1, 0f, c, 2, 1);
        if (c[2] != 8f || c[0] != 0f || c[1] != 0f) throw new IllegalStateException("oneDNN FFM sgemm self-test failed");
    }

    private static MemorySegment find() {
        Optional<MemorySegment> s = SymbolLookup.loaderLookup().find("dnnl_sgemm");
        if (s.isPresent()) return s.get();
        for (String p : Loader.getLoadedLibraries().values()) {
            if (p == null) continue;
            String f = Path.of(p).getFileName().toString();
            if (f.startsWith("libdnnl.so") || f.startsWith("dnnl.dll") || f.startsWith("libdnnl.")) {
                s = SymbolLookup.libraryLookup(Path.of(p), Arena.global()).find("dnnl_sgemm");
                if (s.isPresent()) return s.get();
            }
        }
        throw new IllegalStateException("dnnl_sgemm not found in the libraries loaded by JavaCPP");
    }

    @Override public String name() { return "onednn-ffm"; }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        if (m == 0 || n == 0) return;
        if (k == 0) {
            // oneDNN would read nothing from A/B; C = beta * C
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
                int o = cOff + i * ldc + j;
                c[o] = beta == 0f ? 0f : beta * c[o];
            }
            return;
        }
        checkBounds("A", a, aOff, transA ? k : m, transA ? m : k, lda);
        checkBounds("B", b, bOff, transB ? n : k, transB ? k : n, ldb);
        checkBounds("C", c, cOff, m, n, ldc);
        int st;
        try {
            st = (int) sgemm.invokeExact(transA ? T : N, transB ? T : N, (long) m, (long) n, (long) k, alpha,
                    seg(a, aOff), (long) lda, seg(b, bOff), (long) ldb, beta, seg(c, cOff), (long) ldc);
        } catch (Throwable t) {
            throw new IllegalStateException("oneDNN sgemm call failed", t);
        }
        if (st != 0) throw new IllegalStateException("oneDNN sgemm failed with status " + st
                + " for m=" + m + " n=" + n + " k=" + k);
    }

    private static MemorySegment seg(float[] x, int off) {
        MemorySegment s = MemorySegment.ofArray(x);
        return off == 0 ? s : s.asSlice(4L * off);
    }

    /** The native side reads rows x cols with leading dimension ld from off: stay inside the array. */
    private static void checkBounds(String what, float[] x, int off, int rows, int cols, int ld) {
        if (ld < Math.max(1, cols) || off < 0 || (long) off + (long) (rows - 1) * ld + cols > x.length)
            throw new IndexOutOfBoundsException("sgemm: matrix " + what + " (" + rows + "x" + cols + ", ld " + ld
                    + ", offset " + off + ") does not fit its array of " + x.length);
    }
}
