package io.diffquant.engine.quant;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * The tensors an input-activation quantizer sees (shared by quantization and calibration so both use the same view).
 * Activations are viewed with channels last (ALGORITHMS.md §4: rows are tokens, the last dim is channels). A
 * convolution's NCHW input is transposed to [N·H·W, C] when its granularity is not per tensor or its input is split;
 * a UNet skip concatenation (tag {@code concat-split=c}) is cut into the channel parts [0, c) and [c, C)
 * (Q-Diffusion's split quantization), each with its own parameters.
 */
public final class InputParts {
    private InputParts() {}

    private static final int CHUNK = 1 << 14;

    /** Whether x can be quantized as it is (one part, no transposition). */
    public static boolean direct(QuantPoint p, Granularity g) {
        return p.splitAt() < 0 && !(p.channelsFirst() && !(g instanceof Granularity.PerTensor));
    }

    /**
     * The part tensors of x (fresh copies unless {@link #direct}, in which case x itself is the only part: callers
     * must not modify it in place).
     */
    public static Tensor[] split(QuantPoint p, Granularity g, Tensor x) {
        if (direct(p, g)) return new Tensor[] {x};
        Tensor m = p.channelsFirst() ? channelsLast(p, x) : x.reshape(-1, x.dim(-1));
        if (p.splitAt() < 0) return new Tensor[] {m};
        int rows = m.dim(0), c = m.dim(1), s = p.splitAt();
        if (s <= 0 || s >= c) throw new IllegalArgumentException("layer '" + p.name() + "': input has " + c
                + " channels, the concat split is at " + s);
        Tensor a = Tensor.zeros(rows, s), b = Tensor.zeros(rows, c - s);
        float[] src = m.data(), da = a.data(), db = b.data();
        Parallel.forRange(rows, Math.max(1, CHUNK / c), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                System.arraycopy(src, r * c, da, r * s, s);
                System.arraycopy(src, r * c + s, db, r * (c - s), c - s);
            }
        });
        return new Tensor[] {a, b};
    }

    /** The inverse of {@link #split}: a tensor of x's shape from (quantized) parts. */
    public static Tensor merge(QuantPoint p, Granularity g, Tensor x, Tensor[] parts) {
        if (direct(p, g)) return parts[0];
        Tensor m;
        if (p.splitAt() < 0) {
            m = parts[0];
        } else {
            Tensor a = parts[0], b = parts[1];
            int rows = a.dim(0), s = a.dim(1), c = s + b.dim(1);
            m = Tensor.zeros(rows, c);
            float[] dm = m.data(), da = a.data(), db = b.data();
            Parallel.forRange(rows, Math.max(1, CHUNK / c), (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    System.arraycopy(da, r * s, dm, r * c, s);
                    System.arraycopy(db, r * (c - s), dm, r * c + s, c - s);
                }
            });
        }
        return p.channelsFirst() ? channelsFirst(m, x.shape()) : m.reshape(x.shape());
    }

    /** [N, C, H, W] -> [N·H·W, C]. */
    static Tensor channelsLast(QuantPoint p, Tensor x) {
        if (x.rank() != 4) throw new IllegalArgumentException("layer '" + p.name() + "': convolution input must be [N, C, H, W], got "
                + Arrays.toString(x.shape()));
        int n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        Tensor out = Tensor.zeros(n * hw, c);
        float[] s = x.data(), d = out.data();
        Parallel.forRange(n * c, Math.max(1, CHUNK / Math.max(1, hw)), (a, b) -> {
            for (int nc = a; nc < b; nc++) {
                int ni = nc / c, ci = nc % c, src = nc * hw, dst = ni * hw * c + ci;
                for (int i = 0; i < hw; i++) d[dst + i * c] = s[src + i];
            }
        });
        return out;
    }

    /** [N·H·W, C] -> [N, C, H, W] of the given shape. */
    static Tensor channelsFirst(Tensor m, int[] shape) {
        int n = shape[0], c = shape[1], hw = shape[2] * shape[3];
        Tensor out = Tensor.zeros(shape);
        float[] s = m.data(), d = out.data();
        Parallel.forRange(n * c, Math.max(1, CHUNK / Math.max(1, hw)), (a, b) -> {
            for (int nc = a; nc < b; nc++) {
                int ni = nc / c, ci = nc % c, dst = nc * hw, src = ni * hw * c + ci;
                for (int i = 0; i < hw; i++) d[dst + i] = s[src + i * c];
            }
        });
        return out;
    }
}
