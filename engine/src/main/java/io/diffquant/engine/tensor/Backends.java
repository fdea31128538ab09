package io.diffquant.engine.tensor;

/** Switches for the fast paths (each has a slow twin). */
public final class Backends {
    private Backends() {}

    /** Selects the GEMM backend: "native" (oneDNN) or "java" (reference). */
    public static void useBlas(String which) {
        BlasHolder.set(BlasHolder.create(which));
    }

    public static Blas blas() { return Blas.get(); }
}
