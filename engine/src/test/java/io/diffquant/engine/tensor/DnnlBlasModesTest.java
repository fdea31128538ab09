package io.diffquant.engine.tensor;

import jdk.jfr.Recording;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * DnnlBlas's two modes: zero-copy FFM critical calls (cut into row blocks when large), and JavaCPP's copying calls,
 * which take over for good once a JFR recorder exists (JFR's sampler must never meet a thread in a critical call).
 */
class DnnlBlasModesTest {
    private static void checkGemm(Blas blas, Random r, int m, int n, int k, boolean ta, boolean tb, int samples) {
        int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2, aOff = 5, bOff = 7, cOff = 9;
        float[] a = new float[aOff + (ta ? k : m) * lda], b = new float[bOff + (tb ? n : k) * ldb], c = new float[cOff + m * ldc];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) r.nextGaussian();
        for (int i = 0; i < c.length; i++) c[i] = (float) r.nextGaussian();
        float[] c0 = c.clone();
        blas.sgemm(ta, tb, m, n, k, 0.5f, a, aOff, lda, b, bOff, ldb, 2f, c, cOff, ldc);
        for (int s = 0; s < samples; s++) {
            int i = s == 0 ? m - 1 : r.nextInt(m), j = s == 0 ? n - 1 : r.nextInt(n);
            double acc = 0;
            for (int p = 0; p < k; p++)
                acc += (double) (ta ? a[aOff + p * lda + i] : a[aOff + i * lda + p]) * (tb ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j]);
            double want = 0.5 * acc + 2.0 * c0[cOff + i * ldc + j];
            assertEquals(want, c[cOff + i * ldc + j], 1e-3 + 1e-4 * Math.abs(want), "C[" + i + "," + j + "] m=" + m + " ta=" + ta);
        }
        for (int i = 0; i < cOff; i++) assertEquals(c0[i], c[i], "memory before C untouched");
        for (int i = 0; i < m; i++) for (int j = n; j < ldc && cOff + i * ldc + j < c.length; j++)
            assertEquals(c0[cOff + i * ldc + j], c[cOff + i * ldc + j], "padding of C untouched");
    }

    @Test void zeroCopyThenJavaCppAfterJfrStarts() {
        Blas blas = new DnnlBlas();
        Random r = new Random(3);
        if (!jdk.jfr.FlightRecorder.isInitialized() && EngineSettings.blasZeroCopy())
            assertTrue(DnnlBlas.zeroCopy(), "zero-copy is the default while no JFR recorder exists");
        if (DnnlBlas.ffm()) for (boolean ta : new boolean[] {false, true}) checkNativeGemm(r, 70, 50, 30, ta, !ta);
        int threads = Parallel.threads();
        try {
            for (boolean ta : new boolean[] {false, true}) {
                checkGemm(blas, r, 37, 29, 53, ta, !ta, 50);
                Parallel.setThreads(2);
                checkGemm(blas, r, 1001, 300, 200, ta, !ta, 40);         // rows split over the pool
                Parallel.setThreads(1);
                checkGemm(blas, r, 4100, 520, 480, ta, false, 30);       // > 2 GFLOP: cut into row blocks
            }
        } finally {
            Parallel.setThreads(threads);
        }
        try (Recording rec = new Recording()) {                      // creates the JFR recorder
            assertFalse(DnnlBlas.zeroCopy(), "JFR exists: no more critical calls");
            rec.enable("jdk.ExecutionSample").withPeriod(java.time.Duration.ofMillis(1));
            rec.start();
            for (boolean ta : new boolean[] {false, true}) checkGemm(blas, r, 300, 200, 100, ta, ta, 50);
            concurrentColumnBlocks(blas, r);
            // native operands (ConvOps' im2col) now go through JavaCPP copies; the OpenMP thread control is off too
            assertFalse(DnnlBlas.ffm(), "no FFM downcalls once JFR exists");
            assertFalse(NativeThreads.available(), "no omp_set_num_threads downcalls once JFR exists");
            for (boolean ta : new boolean[] {false, true}) checkNativeGemm(r, 70, 50, 30, ta, !ta);
            rec.stop();
        }
    }

    /** sgemmNative on native segments (row strides wider than the rows) against a double-precision reference. */
    private static void checkNativeGemm(Random r, int m, int n, int k, boolean ta, boolean tb) {
        long lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            var L = java.lang.foreign.ValueLayout.JAVA_FLOAT;
            var a = arena.allocate(4 * (ta ? k : m) * lda, 64);
            var b = arena.allocate(4 * (tb ? n : k) * ldb, 64);
            var c = arena.allocate(4 * m * ldc, 64);
            for (long i = 0; i < a.byteSize() / 4; i++) a.setAtIndex(L, i, (float) r.nextGaussian());
            for (long i = 0; i < b.byteSize() / 4; i++) b.setAtIndex(L, i, (float) r.nextGaussian());
            for (long i = 0; i < c.byteSize() / 4; i++) c.setAtIndex(L, i, (float) r.nextGaussian());
            float[] c0 = c.toArray(L);
            DnnlBlas.sgemmNative(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2f, c, ldc);
            for (int i = 0; i < m; i++) for (int j = 0; j < ldc; j++) {
                float got = c.getAtIndex(L, i * ldc + j);
                if (j >= n) { assertEquals(c0[(int) (i * ldc + j)], got, "padding of C untouched"); continue; }
                double acc = 0;
                for (int p = 0; p < k; p++)
                    acc += (double) a.getAtIndex(L, ta ? p * lda + i : i * lda + p) * b.getAtIndex(L, tb ? j * ldb + p : p * ldb + j);
                double want = 0.5 * acc + 2.0 * c0[(int) (i * ldc + j)];
                assertEquals(want, got, 1e-3 + 1e-4 * Math.abs(want), "native C[" + i + "," + j + "] ta=" + ta + " ffm=" + DnnlBlas.ffm());
            }
        }
    }

    /** Two threads fill disjoint column blocks of one C (row stride = full width): neither may undo the other. */
    private static void concurrentColumnBlocks(Blas blas, Random r) {
        int m = 64, k = 32, n = 96, half = n / 2;
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) r.nextGaussian();
        for (int rep = 0; rep < 20; rep++) {
            java.util.Arrays.fill(c, 0f);
            Thread left = new Thread(() -> { for (int i = 0; i < 20; i++) blas.sgemm(false, false, m, half, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n); });
            Thread right = new Thread(() -> { for (int i = 0; i < 20; i++) blas.sgemm(false, false, m, half, k, 1f, a, 0, k, b, half, n, 0f, c, half, n); });
            left.start();
            right.start();
            try {
                left.join();
                right.join();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            for (int j : new int[] {0, half - 1, half, n - 1}) {
                double want = 0;
                for (int p = 0; p < k; p++) want += (double) a[(m - 1) * k + p] * b[p * n + j];
                assertEquals(want, c[(m - 1) * n + j], 1e-3, "column " + j + " after concurrent column-block GEMMs");
            }
        }
    }

    @Test void badOperandExtentsAreRejectedBeforeTheNativeCall() {
        Blas blas = new DnnlBlas();
        float[] a = new float[10], b = new float[10], c = new float[10];
        String m = assertThrows(IllegalArgumentException.class,
                () -> blas.sgemm(false, false, 4, 4, 4, 1f, a, 0, 4, b, 0, 4, 0f, c, 0, 4)).getMessage();
        assertTrue(m.contains("matrix A of 4x4"), m);
        assertThrows(IllegalArgumentException.class, () -> blas.sgemm(false, false, 1, 2, 3, 1f, a, 0, 2, b, 0, 2, 0f, c, 0, 2));
    }
}
