package io.diffquant.engine.tensor;

/**
 * The one place where the engine reads system properties and the environment.
 * <ul>
 *   <li>{@code diffquant.threads} / {@code DIFFQUANT_THREADS}: worker threads (default: available processors)</li>
 *   <li>{@code diffquant.blas} / {@code DIFFQUANT_BLAS}: {@code native} (oneDNN, default) or {@code java} (reference)</li>
 *   <li>{@code diffquant.blas.zerocopy} / {@code DIFFQUANT_BLAS_ZEROCOPY}: {@code true} (default) lets oneDNN read and
 *       write the Java arrays in place while no JFR recorder exists; {@code false} always uses JavaCPP's copying calls</li>
 * </ul>
 */
public final class EngineSettings {
    private EngineSettings() {}

    static String read(String prop, String env, String def) {
        String v = System.getProperty(prop);
        if (v == null || v.isBlank()) v = System.getenv(env);
        return v == null || v.isBlank() ? def : v.trim();
    }

    public static int threads() {
        String v = read("diffquant.threads", "DIFFQUANT_THREADS", null);
        if (v == null) return Runtime.getRuntime().availableProcessors();
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) return n;
        } catch (NumberFormatException ignored) { }
        throw new IllegalArgumentException("diffquant.threads / DIFFQUANT_THREADS must be a positive integer, got '" + v + "'");
    }

    public static String blas() { return read("diffquant.blas", "DIFFQUANT_BLAS", "native"); }

    public static boolean blasZeroCopy() {
        String v = read("diffquant.blas.zerocopy", "DIFFQUANT_BLAS_ZEROCOPY", "true");
        if (v.equalsIgnoreCase("true")) return true;
        if (v.equalsIgnoreCase("false")) return false;
        throw new IllegalArgumentException("diffquant.blas.zerocopy / DIFFQUANT_BLAS_ZEROCOPY must be true or false, got '" + v + "'");
    }
}
