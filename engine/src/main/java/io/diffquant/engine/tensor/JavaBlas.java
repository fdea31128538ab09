package io.diffquant.engine.tensor;

/** Reference GEMM in plain Java: the slow twin of {@link DnnlBlas}, used by tests and as fallback. */
public final class JavaBlas implements Blas {
    @Override public String name() { return "java"; }

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        Parallel.forRange(m, Math.max(1, 4096 / Math.max(1, n * Math.max(1, k) / 64 + 1)), (r0, r1) -> {
            float[] row = new float[n];
            for (int i = r0; i < r1; i++) {
                java.util.Arrays.fill(row, 0f);
                for (int p = 0; p < k; p++) {
                    float av = transA ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
                    if (av == 0f) continue;
                    if (!transB) {
                        int bo = bOff + p * ldb;
                        for (int j = 0; j < n; j++) row[j] += av * b[bo + j];
                    } else {
                        for (int j = 0; j < n; j++) row[j] += av * b[bOff + j * ldb + p];
                    }
                }
                int co = cOff + i * ldc;
                for (int j = 0; j < n; j++) {
                    float prev = beta == 0f ? 0f : beta * c[co + j];
                    c[co + j] = alpha * row[j] + prev;
                }
            }
        });
    }
}
