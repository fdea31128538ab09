package io.diffquant.engine.tensor;

import org.bytedeco.dnnl.global.dnnl;

/** oneDNN's row-major sgemm (org.bytedeco:dnnl). */
public final class DnnlBlas implements Blas {
    private static final byte N = (byte) 'N';
    private static final byte T = (byte) 'T';

    public DnnlBlas() {
        // force native loading now so that failures surface at construction
        float[] a = {1f}, b = {2f}, c = {0f};
        int st = dnnl.dnnl_sgemm(N, N, 1, 1, 1, 1f, a, 1, b, 1, 0f, c, 1);
        if (st != 0 || c[0] != 2f) throw new IllegalStateException("oneDNN sgemm self-test failed (status " + st + ")");
    }

    @Override public String name() { return "onednn"; }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        if (m == 0 || n == 0) return;
        if (aOff != 0 || bOff != 0 || cOff != 0) {
            // the float[] entry points take no offsets: hand the work to contiguous copies
            int aRows = transA ? k : m, bRows = transB ? n : k;
            float[] ac = copyBlock(a, aOff, aRows, lda);
            float[] bc = copyBlock(b, bOff, bRows, ldb);
            float[] cc = copyBlock(c, cOff, m, ldc);
            call(transA, transB, m, n, k, alpha, ac, lda, bc, ldb, beta, cc, ldc);
            System.arraycopy(cc, 0, c, cOff, Math.min(cc.length, c.length - cOff));
            return;
        }
        call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
}
