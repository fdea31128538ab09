package io.diffquant.engine.testing;

import io.diffquant.engine.tensor.Tensor;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/** Helpers shared by the golden-file tests (tools/golden writes the files): resources, id conversions, max |a - b|. */
public final class Golden {
    private Golden() {}

    /** The directory of a test resource, e.g. {@code golden/dit-small}; fails the test when it is missing. */
    public static Path resourceDir(String name) throws URISyntaxException {
        var url = Golden.class.getClassLoader().getResource(name);
        assertNotNull(url, "test resource " + name);
        return Path.of(url.toURI());
    }

    /** Timesteps stored as I64 in a golden file, as the float values the models take. */
    public static float[] floats(long[] v) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) r[i] = v[i];
        return r;
    }

    /** Labels stored as I64, as ints. */
    public static int[] ints(long[] v) { return Arrays.stream(v).mapToInt(Math::toIntExact).toArray(); }

    /** max |a - b| over all elements (in double), after asserting equal shapes. */
    public static double maxAbsDiff(Tensor a, Tensor b) {
        assertArrayEquals(a.shape(), b.shape(), "shape");
        double m = 0;
        float[] x = a.data(), y = b.data();
        for (int i = 0; i < x.length; i++) m = Math.max(m, Math.abs((double) x[i] - y[i]));
        return m;
    }
}
