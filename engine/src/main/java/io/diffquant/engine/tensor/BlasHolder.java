package io.diffquant.engine.tensor;

import java.util.logging.Logger;

final class BlasHolder {
    private static final Logger LOG = Logger.getLogger(BlasHolder.class.getName());
    private static volatile Blas active;

    private BlasHolder() {}

    static Blas active() {
        Blas b = active;
        if (b == null) {
            synchronized (BlasHolder.class) {
                if (active == null) active = create(EngineSettings.blas());
                b = active;
            }
        }
        return b;
    }

    static synchronized void set(Blas b) { active = b; }

    static Blas create(String which) {
        if ("java".equalsIgnoreCase(which)) return new JavaBlas();
        try {
            return new DnnlFfmBlas();
        } catch (Throwable t) {
            LOG.fine("oneDNN through FFM unavailable (" + t + "); using the JavaCPP entry points");
        }
        try {
            return new DnnlBlas();
        } catch (Throwable t) {
            LOG.warning("oneDNN could not be loaded (" + t + "); falling back to the Java reference GEMM");
            return new JavaBlas();
        }
    }
}
