package io.diffquant.kernels.tornado;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.tensor.Tensor;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Test inputs and the engine references the kernels are compared with: fake quantization (Quantizer: the same codes and
 * scales), and GEMMs of the fake-quantized operands evaluated in double precision.
 */
final class Refs {
    private Refs() {}

    static Tensor randn(SplittableRandom r, float std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) {
            double u = r.nextDouble(), v = r.nextDouble();
            d[i] = (float) (std * Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v));
        }
        return t;
    }

    /** The engine's codes and parameters of a weight [out, in] (round to nearest with min-max parameters). */
    static QuantizedTensor quantizeWeight(Tensor w, NumberFormat f, Granularity g) {
        Quantizer q = Quantizer.calibrated(f, g, Layout.WEIGHT, io.diffquant.engine.quant.format.RangeEstimator.minMax(), w);
        return q.named("test.weight").quantize(w);
    }

    /** The engine's dynamic fake quantization of activations [rows, cols]. */
    static Tensor fakeQuantDynamic(Tensor x, NumberFormat f, Granularity g) {
        return Quantizer.dynamic(f, g, Layout.ACTIVATION).named("test.input").fakeQuant(x);
    }

    /** y = x W^T + b in double precision, and the magnitude sum |x||W| + |b| per output (for tolerances). */
    static double[][] linear(Tensor x, Tensor w, Tensor b) {
        int out = w.dim(0), in = w.size() / out, rows = x.size() / in;
        float[] xd = x.data(), wd = w.data();
        double[] y = new double[rows * out], mag = new double[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b.data()[o], m = Math.abs(s);
                for (int k = 0; k < in; k++) {
                    double p = (double) xd[r * in + k] * wd[o * in + k];
                    s += p;
                    m += Math.abs(p);
                }
                y[r * out + o] = s;
                mag[r * out + o] = m;
            }
        }
        return new double[][] {y, mag};
    }

    /** Asserts |actual - expected| <= rtol * mag + atol element-wise, naming the first failing index. */
    static void assertClose(String what, float[] actual, double[] expected, double[] mag, double rtol, double atol) {
        if (actual.length < expected.length) fail(what + ": " + actual.length + " values, expected " + expected.length);
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double tol = rtol * (mag == null ? Math.abs(expected[i]) : mag[i]) + atol;
            double err = Math.abs(actual[i] - expected[i]);
            if (!(err <= tol)) fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i] + " (|error| "
                    + err + " > tolerance " + tol + ")");
            worst = Math.max(worst, err / Math.max(tol, 1e-30));
        }
    }

    static void assertClose(String what, float[] actual, float[] expected, double rtol, double atol) {
        double[] e = new double[expected.length];
        for (int i = 0; i < e.length; i++) e[i] = expected[i];
        assertClose(what, actual, e, null, rtol, atol);
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }
}
