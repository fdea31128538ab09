package io.diffquant.engine.train;

import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019), step for step as
 * torch.optim.AdamW's single-tensor path (PyTorch 1.13) in float32: p *= 1 - lr wd; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Element-wise only, so the result does not depend on the thread count. A parameter without a gradient in
 * a step is skipped entirely (no decay, no moment update), as in PyTorch when .grad is None.
 */
public final class AdamW {
    /** Hyper-parameters; DiT trains with lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0. */
    public record Config(double lr, double beta1, double beta2, double eps, double weightDecay) {
        public Config {
            if (!(lr >= 0) || !Double.isFinite(lr)) throw new IllegalArgumentException("adam.lr must be a finite value >= 0, got " + lr);
            if (!(beta1 >= 0 && beta1 < 1)) throw new IllegalArgumentException("adam.beta1 must be in [0, 1), got " + beta1);
            if (!(beta2 >= 0 && beta2 < 1)) throw new IllegalArgumentException("adam.beta2 must be in [0, 1), got " + beta2);
            if (!(eps > 0)) throw new IllegalArgumentException("adam.eps must be > 0, got " + eps);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("adam.weightDecay must be >= 0, got " + weightDecay);
        }

        public static Config dit() { return new Config(1e-4, 0.9, 0.999, 1e-8, 0.0); }

        public Config withLr(double newLr) { return new Config(newLr, beta1, beta2, eps, weightDecay); }
    }

    private final Config config;
    private final Map<String, Tensor> params;
    private final Map<String, Tensor> m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
    private final Map<String, Long> steps = new LinkedHashMap<>();

    /** @param params the trainable tensors by name; updated in place */
    public AdamW(Map<String, Tensor> params, Config config) {
        this.config = config;
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        for (var e : this.params.entrySet()) {
            m.put(e.getKey(), Tensor.zeros(e.getValue().shape()));
            v.put(e.getKey(), Tensor.zeros(e.getValue().shape()));
            steps.put(e.getKey(), 0L);
        }
    }

    public Config config() { return config; }
    public Map<String, Tensor> params() { return params; }
    /** First moments by parameter name (live state). */
    public Map<String, Tensor> firstMoments() { return Collections.unmodifiableMap(m); }
    /** Second moments by parameter name (live state). */
    public Map<String, Tensor> secondMoments() { return Collections.unmodifiableMap(v); }
    /** Per-parameter step counts (live state). */
    public long steps(String name) { return steps.get(name); }

    /** One update with the configured learning rate. */
    public void step(Gradients grads) { step(grads, config.lr()); }

    /** One update with learning rate lr (schedules, warm-up). */
    public void step(Gradients grads, double lr) {
        for (var e : params.entrySet()) {
            float[] g = grads.raw(e.getValue());
            if (g == null) continue;
            String name = e.getKey();
            long t = steps.get(name) + 1;
            steps.put(name, t);
            update(e.getValue().data(), g, m.get(name).data(), v.get(name).data(), t, lr);
        }
    }

    private void update(float[] p, float[] g, float[] mm, float[] vv, long t, double lr) {
        float decay = (float) (1.0 - lr * config.weightDecay());
        float b1 = (float) config.beta1(), b2 = (float) config.beta2();
        float oneMinusB1 = (float) (1.0 - config.beta1()), oneMinusB2 = (float) (1.0 - config.beta2());
        double bc1 = 1.0 - Math.pow(config.beta1(), t), bc2 = 1.0 - Math.pow(config.beta2(), t);
        float stepSize = (float) (lr / bc1);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        float eps = (float) config.eps();
        boolean wd = config.weightDecay() != 0;
        Parallel.forRange(p.length, 1 << 14, (s, e) -> {
            for (int i = s; i < e; i++) {
                float pi = wd ? p[i] * decay : p[i];
                float gi = g[i];
                float mi = mm[i] * b1 + oneMinusB1 * gi;
                float vi = vv[i] * b2 + oneMinusB2 * gi * gi;
                mm[i] = mi;
                vv[i] = vi;
                float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
                p[i] = pi - stepSize * (mi / denom);
            }
        });
    }

    /** Restores the state saved from {@link #firstMoments()}, {@link #secondMoments()} and the step counts. */
    public void load(Map<String, Tensor> firstMoments, Map<String, Tensor> secondMoments, Map<String, Long> stepCounts, String source) {
        for (String name : params.keySet()) {
            copyInto(source, "first moment", name, firstMoments.get(name), m.get(name));
            copyInto(source, "second moment", name, secondMoments.get(name), v.get(name));
            Long t = stepCounts.get(name);
            if (t == null || t < 0) throw new IllegalArgumentException(source + ": no valid Adam step count for parameter '" + name + "'");
            steps.put(name, t);
        }
    }

    static void copyInto(String source, String what, String name, Tensor src, Tensor dst) {
        if (src == null) throw new IllegalArgumentException(source + ": missing " + what + " of parameter '" + name + "'");
        if (!src.sameShape(dst)) throw new IllegalArgumentException(source + ": " + what + " of parameter '" + name
                + "' has shape " + java.util.Arrays.toString(src.shape()) + ", the model needs " + java.util.Arrays.toString(dst.shape()));
        System.arraycopy(src.data(), 0, dst.data(), 0, dst.size());
    }
}
