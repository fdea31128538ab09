package io.diffquant.engine.train;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Exponential moving average of parameters, as DiT's update_ema (facebookresearch/DiT train.py):
 * ema = decay ema + (1 - decay) param in float32, initialised to a copy of the parameters. With warm-up the
 * decay of update n (1-based) is min(decay, (1 + n) / (10 + n)) (tf.train.ExponentialMovingAverage's
 * num_updates rule), so short runs are not dominated by the initial weights.
 */
public final class Ema {
    public record Config(double decay, boolean warmup) {
        public Config {
            if (!(decay >= 0 && decay <= 1)) throw new IllegalArgumentException("ema.decay must be in [0, 1], got " + decay);
        }

        public static Config dit() { return new Config(0.9999, false); }
    }

    private final Config config;
    private final Map<String, Tensor> params;
    private final Map<String, Tensor> shadow = new LinkedHashMap<>();
    private long updates;

    public Ema(Map<String, Tensor> params, Config config) {
        this.config = config;
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        for (var e : this.params.entrySet()) shadow.put(e.getKey(), Tensor.of(e.getValue().data().clone(), e.getValue().shape()));
    }

    public Config config() { return config; }
    public long updates() { return updates; }

    /** The averaged tensors by parameter name (live state; copy before modifying). */
    public Map<String, Tensor> averages() { return Collections.unmodifiableMap(shadow); }

    /** The decay the next update will use. */
    public double nextDecay() {
        long n = updates + 1;
        return config.warmup() ? Math.min(config.decay(), (1.0 + n) / (10.0 + n)) : config.decay();
    }

    public void update() {
        float d = (float) nextDecay(), a = (float) (1.0 - nextDecay());
        for (var e : params.entrySet()) {
            float[] p = e.getValue().data(), s = shadow.get(e.getKey()).data();
            Parallel.forRange(p.length, 1 << 14, (from, to) -> {
                for (int i = from; i < to; i++) s[i] = s[i] * d + p[i] * a;
            });
        }
        updates++;
    }

    /** Restores averages and the update count from a checkpoint. */
    public void load(Map<String, Tensor> averages, long updateCount, String source) {
        if (updateCount < 0) throw new IllegalArgumentException(source + ": negative EMA update count " + updateCount);
        for (String name : params.keySet()) AdamW.copyInto(source, "EMA average", name, averages.get(name), shadow.get(name));
        updates = updateCount;
    }
}
