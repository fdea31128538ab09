package io.diffquant.engine.quant.calib;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.diffusion.DdimSampler;
import io.diffquant.engine.diffusion.DdpmSampler;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.diffusion.Respacing;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampler;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.ConfigJson;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * How calibration data is made and used (Q-Diffusion / TFMQ-DM calibration: run the full-precision sampler, record
 * x_t at every step): the sampler (DDIM/DDPM, steps, eta, schedule, classifier-free guidance), how many images in how
 * many sampling runs (one run = one cache file), the seed, which (timestep, sample) pairs calibration uses, the
 * forward batch size and the reservoir size of percentile / Lp-search observers. Class labels of conditional
 * models cycle 0, 1, ..., num_classes-1 over the images.
 *
 * <p>Per-timestep parameters are keyed by timestep value: sample with the same sampler, steps and schedule that
 * calibration used.
 *
 * @param sampler       "ddim" or "ddpm"
 * @param steps         sampling steps (respacing of the 1000 training steps: "ddim&lt;steps&gt;" when it exists, else
 *                      "&lt;steps&gt;" evenly spaced, as the sample command)
 * @param samples       images to sample
 * @param batch         images per sampling run (and per cache file)
 * @param forwardBatch  rows per calibration forward pass
 * @param reservoir     elements kept per quantizer for percentile / Lp-search ranges
 */
public record CalibrationSettings(String sampler, int steps, double eta, String schedule, double cfgScale, int samples, int batch,
                                  long seed, TimestepSubset subset, int forwardBatch, int reservoir) {

    public static final Set<String> FIELDS = new LinkedHashSet<>(List.of("sampler", "steps", "eta", "schedule", "cfg_scale",
            "samples", "batch", "seed", "subset", "forward_batch", "reservoir"));
    private static final Set<String> SUBSET_FIELDS = new LinkedHashSet<>(List.of("kind", "timesteps", "samples_per_timestep", "seed"));

    public CalibrationSettings {
        if (!"ddim".equals(sampler) && !"ddpm".equals(sampler))
            throw new IllegalArgumentException("sampler: expected \"ddim\" or \"ddpm\", got \"" + sampler + "\"");
        if (steps < 1 || steps > 1000) throw new IllegalArgumentException("steps: expected 1..1000, got " + steps);
        if (!(eta >= 0) || Double.isInfinite(eta)) throw new IllegalArgumentException("eta: expected >= 0, got " + eta);
        NoiseSchedule.named(schedule, 1000);
        if (!(cfgScale >= 1) || Double.isInfinite(cfgScale)) throw new IllegalArgumentException("cfg_scale: expected >= 1 (1 = no guidance), got " + cfgScale);
        if (samples < 1) throw new IllegalArgumentException("samples: expected >= 1, got " + samples);
        if (batch < 1) throw new IllegalArgumentException("batch: expected >= 1, got " + batch);
        if (subset == null) throw new IllegalArgumentException("subset is null");
        if (forwardBatch < 1) throw new IllegalArgumentException("forward_batch: expected >= 1, got " + forwardBatch);
        if (reservoir < 1) throw new IllegalArgumentException("reservoir: expected >= 1, got " + reservoir);
    }

    /** DDIM 50 steps, eta 0, linear schedule, no guidance, 32 images in runs of 16, seed 0, uniform 10 timesteps x 32. */
    public static CalibrationSettings defaults() {
        return new CalibrationSettings("ddim", 50, 0, "linear", 1, 32, 16, 0, TimestepSubset.uniform(10, 32, 0), 32, 1 << 16);
    }

    public CalibrationSettings withSubset(TimestepSubset s) {
        return new CalibrationSettings(sampler, steps, eta, schedule, cfgScale, samples, batch, seed, s, forwardBatch, reservoir);
    }

    public CalibrationSettings withSampling(String sampler, int steps, int samples, int batch, long seed) {
        return new CalibrationSettings(sampler, steps, eta, schedule, cfgScale, samples, batch, seed, subset, forwardBatch, reservoir);
    }

    public CalibrationSettings withReservoir(int elements) {
        return new CalibrationSettings(sampler, steps, eta, schedule, cfgScale, samples, batch, seed, subset, forwardBatch, elements);
    }

    public CalibrationSettings withForwardBatch(int rows) {
        return new CalibrationSettings(sampler, steps, eta, schedule, cfgScale, samples, batch, seed, subset, rows, reservoir);
    }

    /** The respacing string the sampler runs with. */
    public String respacing() {
        if ("ddim".equals(sampler)) {
            try {
                Respacing.spaceTimesteps(1000, "ddim" + steps);
                return "ddim" + steps;
            } catch (IllegalArgumentException ignored) { /* no integer stride: evenly spaced sections */ }
        }
        return Integer.toString(steps);
    }

    public Sampler samplerInstance() { return "ddim".equals(sampler) ? new DdimSampler(eta) : new DdpmSampler(); }

    /** The sampling request of run {@code index} (images [index·batch, ...)) for a model. */
    public SampleRequest request(DiffusionModel model, int index) {
        int first = index * batch, n = Math.min(batch, samples - first);
        if (n <= 0) throw new IllegalArgumentException("calibration run " + index + " is past the " + samples + " samples");
        SampleRequest.Builder b = SampleRequest.forModel(model, n).sampler(samplerInstance()).respacing(respacing())
                .schedule(NoiseSchedule.named(schedule, 1000)).seed(seed).firstSampleIndex(first);
        if (model.numClasses() > 0) {
            int[] y = new int[n];
            for (int i = 0; i < n; i++) y[i] = (first + i) % model.numClasses();
            b.labels(y);
            if (cfgScale != 1) b.cfg(cfgScale);
        } else if (cfgScale != 1) {
            throw new IllegalArgumentException("cfg_scale " + cfgScale + ": classifier-free guidance needs a class-conditional model");
        }
        return b.build();
    }

    /** Number of sampling runs. */
    public int runs() { return (samples + batch - 1) / batch; }

    // ------------------------------------------------------------------ JSON

    public ObjectNode toJson() {
        ObjectNode o = ConfigJson.object();
        o.put("sampler", sampler);
        o.put("steps", steps);
        o.put("eta", eta);
        o.put("schedule", schedule);
        o.put("cfg_scale", cfgScale);
        o.put("samples", samples);
        o.put("batch", batch);
        o.put("seed", seed);
        ObjectNode s = o.putObject("subset");
        s.put("kind", subset.kind().id());
        s.put("timesteps", subset.timesteps());
        s.put("samples_per_timestep", subset.samplesPerTimestep());
        s.put("seed", subset.seed());
        o.put("forward_batch", forwardBatch);
        o.put("reservoir", reservoir);
        return o;
    }

    /** Reads settings; absent fields take {@link #defaults()}; errors carry the JSON path. */
    public static CalibrationSettings fromJson(JsonView v) throws JsonException {
        ConfigJson.requireOnly(v, FIELDS);
        CalibrationSettings d = defaults();
        TimestepSubset sub = d.subset();
        if (v.has("subset")) {
            JsonView s = v.get("subset");
            ConfigJson.requireOnly(s, SUBSET_FIELDS);
            TimestepSubset.Kind k;
            try {
                k = TimestepSubset.Kind.parse(s.optString("kind", sub.kind().id()));
            } catch (IllegalArgumentException e) {
                throw s.error("kind", e.getMessage());
            }
            try {
                sub = new TimestepSubset(k, s.optInt("timesteps", sub.timesteps()), s.optInt("samples_per_timestep", sub.samplesPerTimestep()),
                        s.optLong("seed", sub.seed()));
            } catch (IllegalArgumentException e) {
                throw s.error(e.getMessage());
            }
        }
        String[] order = {"sampler", "steps", "eta", "schedule", "cfg_scale", "samples", "batch", "seed", "forward_batch", "reservoir"};
        try {
            return new CalibrationSettings(v.optString("sampler", d.sampler()), v.optInt("steps", d.steps()), v.optDouble("eta", d.eta()),
                    v.optString("schedule", d.schedule()), v.optDouble("cfg_scale", d.cfgScale()), v.optInt("samples", d.samples()),
                    v.optInt("batch", d.batch()), v.optLong("seed", d.seed()), sub, v.optInt("forward_batch", d.forwardBatch()),
                    v.optInt("reservoir", d.reservoir()));
        } catch (IllegalArgumentException e) {
            String msg = e.getMessage();
            for (String f : order) if (msg != null && msg.startsWith(f + ":")) throw v.error(f, msg.substring(f.length() + 1).trim());
            if (msg != null && msg.contains("schedule")) throw v.error("schedule", msg);
            throw v.error(msg);
        }
    }
}
