package io.diffquant.engine.tensor;

/**
 * Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T.
 * A is M x K after op, B is K x N after op, C is M x N; lda/ldb/ldc are row strides of the stored matrices.
 */
public interface Blas {
    void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
               float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
               float beta, float[] c, int cOff, int ldc);

    String name();

    /** The active backend: oneDNN unless {@code diffquant.blas=java} or the native library cannot load. */
    static Blas get() { return BlasHolder.active(); }
}
