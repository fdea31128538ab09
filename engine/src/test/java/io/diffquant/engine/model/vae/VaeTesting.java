package io.diffquant.engine.model.vae;

import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Shared helpers of the VAE tests: golden resources and closeness checks. */
final class VaeTesting {
    private VaeTesting() {}

    static Path resource(String name) {
        URL u = VaeTesting.class.getResource("/golden/" + name);
        assertNotNull(u, "test resource golden/" + name + " (made by tools/golden/make_golden_vae.py)");
        try {
            return Path.of(u.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Path smallFolder() { return resource("vae-small"); }

    static Map<String, Tensor> readAll(Path file) throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            return r.readAllFloat();
        }
    }

    static float maxAbsDiff(Tensor a, Tensor b) {
        assertArrayEquals(b.shape(), a.shape(), "shape");
        float m = 0f;
        for (int i = 0; i < a.size(); i++) {
            float d = Math.abs(a.data()[i] - b.data()[i]);
            if (!(d <= m)) m = Float.isNaN(d) ? Float.POSITIVE_INFINITY : d;
        }
        return m;
    }

    static void assertClose(Tensor expected, Tensor actual, float atol, String what) {
        float d = maxAbsDiff(actual, expected);
        assertTrue(d <= atol, what + ": max abs diff " + d + " > " + atol + " (shape " + Arrays.toString(actual.shape()) + ")");
        System.out.printf("%s: max abs diff %.2e (tolerance %.0e)%n", what, d, atol);
    }

    static float maxAbs(Tensor t) {
        float m = 0f;
        for (float v : t.data()) m = Math.max(m, Math.abs(v));
        return m;
    }
}
