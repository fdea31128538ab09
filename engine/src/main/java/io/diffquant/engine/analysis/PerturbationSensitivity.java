package io.diffquant.engine.analysis;

import io.diffquant.engine.diffusion.SeededNoise;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Perturbation sensitivity, the motivating experiment of TFMQ-DM (ALGORITHMS.md §6): Gaussian noise of magnitude
 * λ·std is added to the temporal features (the outputs of the Temporal Information Block,
 * {@link io.diffquant.engine.temporal.TemporalInfoBlock})
 * and, separately, to non-temporal features (DiT: every block's output; UNet: every ResNet block's residual branch, the
 * output of its conv2), at every denoiser call; std is the standard deviation of each sample's own feature values, so
 * both kinds get the same relative disturbance. Images sampled with the same seeds are scored against the FP images
 * (MSE) and, for Fashion-MNIST models, with FID-FMNIST ({@link FmnistMetrics}; images clamped to [-1, 1] first).
 * The perturbation noise is deterministic (a {@link SeededNoise} stream per site, keyed by the denoiser call index).
 */
public final class PerturbationSensitivity {
    private PerturbationSensitivity() {}

    /** Where noise is added. */
    public enum Target { TEMPORAL, NON_TEMPORAL }

    /**
     * Image quality over the λ sweep for one target.
     * @param fid  FID-FMNIST per λ (NaN without metrics or when sampling diverged)
     * @param mse  mean squared error against the FP images per λ ([-1, 1] units; NaN when sampling diverged)
     */
    public record Sweep(Target target, List<String> sites, double[] fid, double[] mse) {}

    /**
     * @param fpFid    FID-FMNIST of the unperturbed FP images (NaN without metrics)
     * @param fidFloor the metric's real-data floor (NaN without metrics)
     * @param metric   the metric's name ("FID-FMNIST", or "" without metrics)
     */
    public record Result(double[] lambdas, int images, double fpFid, double fidFloor, String metric, Sweep temporal, Sweep nonTemporal,
                         double seconds) {
        public Sweep sweep(Target t) { return t == Target.TEMPORAL ? temporal : nonTemporal; }

        /** At every λ, how many times larger the temporal MSE is than the non-temporal one. */
        public double[] mseRatio() {
            double[] r = new double[lambdas.length];
            for (int i = 0; i < r.length; i++) r[i] = temporal.mse()[i] / nonTemporal.mse()[i];
            return r;
        }
    }

    /**
     * Runs the sweep.
     * @param images  samples per setting (same seeds and labels for every setting)
     * @param metrics FID-FMNIST scorer, or null (MSE only); needs [N, 1, 28, 28] images
     */
    public static Result evaluate(AnalysisSession session, double[] lambdas, int images, FmnistMetrics metrics) {
        if (lambdas == null || lambdas.length == 0) throw new IllegalArgumentException("perturbation: no λ values");
        for (double l : lambdas) if (!(l >= 0) || !Double.isFinite(l)) throw new IllegalArgumentException("perturbation: λ must be finite and >= 0, got " + l);
        if (images < 2 && metrics != null) throw new IllegalArgumentException("perturbation: FID-FMNIST needs at least 2 images, got " + images);
        DiffusionModel model = session.model();
        if (metrics != null && (model.inChannels() != 1 || model.sampleSize() != FmnistClassifier.IMAGE_SIZE)) throw new IllegalArgumentException(
                "perturbation: FID-FMNIST measures [N, 1, 28, 28] images, this " + model.architecture() + " makes [N, " + model.inChannels()
                        + ", " + model.sampleSize() + ", " + model.sampleSize() + "]; run without metrics");
        long t0 = System.nanoTime();
        Tensor fp = session.fpSamples(images);
        double fpFid = metrics == null ? Double.NaN : fid(metrics, fp);
        List<String> temporalSites = session.tib().features().stream().map(io.diffquant.engine.temporal.TemporalInfoBlock.Feature::layer).toList();
        List<String> blockSites = nonTemporalSites(model);
        double[][] tq = new double[2][lambdas.length], nq = new double[2][lambdas.length];
        for (int i = 0; i < lambdas.length; i++) {
            Tensor a = perturbed(session, Target.TEMPORAL, lambdas[i], images, temporalSites);
            score(metrics, fp, a, tq, i);
            Tensor b = perturbed(session, Target.NON_TEMPORAL, lambdas[i], images, blockSites);
            score(metrics, fp, b, nq, i);
        }
        return new Result(lambdas.clone(), images, fpFid, metrics == null ? Double.NaN : metrics.reference().fidFloor(),
                metrics == null ? "" : io.diffquant.engine.metrics.MetricsTable.FID_FMNIST,
                new Sweep(Target.TEMPORAL, temporalSites, tq[0], tq[1]), new Sweep(Target.NON_TEMPORAL, blockSites, nq[0], nq[1]),
                (System.nanoTime() - t0) / 1e9);
    }

    /** The non-temporal sites: DiT block outputs, UNet ResNet conv2 outputs. */
    public static List<String> nonTemporalSites(DiffusionModel model) {
        List<String> out = new ArrayList<>();
        if (model instanceof DiT d) {
            for (int i = 0; i < d.depth(); i++) out.add("blocks." + i);
        } else {
            for (Layer l : model.layers().all()) if (l.name().endsWith(".conv2") && l.tags().containsKey("block")) out.add(l.name());
        }
        if (out.isEmpty()) throw new IllegalArgumentException("perturbation: no non-temporal sites (block outputs) known for this " + model.architecture());
        return out;
    }

    private static void score(FmnistMetrics metrics, Tensor fp, Tensor img, double[][] into, int i) {
        if (img == null) {
            into[0][i] = Double.NaN;
            into[1][i] = Double.NaN;
            return;
        }
        into[0][i] = metrics == null ? Double.NaN : fid(metrics, img);
        into[1][i] = ImageMetrics.mse(clampUnit(img), clampUnit(fp)).mean();
    }

    private static double fid(FmnistMetrics metrics, Tensor images) {
        return metrics.fid(metrics.classifier().features(clampUnit(images)));
    }

    /** The final images with noise of relative size λ at the sites, or null when sampling diverged (non-finite outputs). */
    static Tensor perturbed(AnalysisSession session, Target target, double lambda, int images, List<String> sites) {
        DiffusionModel model = session.model();
        Perturber p = new Perturber(session.settings().seed(), (float) lambda);
        Denoiser d;
        List<Layer> hooked = new ArrayList<>();
        LayerHook hook = null;
        if (lambda == 0) {
            d = model;
        } else if (target == Target.NON_TEMPORAL && model instanceof DiT dit) {
            d = (x, t, y) -> {
                p.call++;
                ForwardContext ctx = dit.context(x, t, y);
                Tensor h = dit.embed(x, ctx);
                Tensor c = dit.conditioning(ctx);
                for (int i = 0; i < dit.depth(); i++) h = p.perturb(dit.block(i, h, c, ctx), i);
                return dit.head(h, c, ctx);
            };
        } else {
            java.util.Map<String, Integer> index = new java.util.HashMap<>();
            for (int i = 0; i < sites.size(); i++) index.put(sites.get(i), i);
            hook = new LayerHook() {
                @Override public Tensor output(Layer layer, Tensor y, ForwardContext ctx) {
                    Integer i = index.get(layer.name());
                    return i == null ? y : p.perturb(y, i);
                }
            };
            for (String s : sites) {
                Layer l = model.layers().get(s);
                l.addHook(hook);
                hooked.add(l);
            }
            d = (x, t, y) -> {
                p.call++;
                return model.forward(x, t, y);
            };
        }
        try {
            return session.sampleFinal(d, images);
        } catch (IllegalStateException e) {
            if (e.getMessage() != null && e.getMessage().contains("NaN or infinite")) return null;
            throw e;
        } finally {
            for (Layer l : hooked) l.removeHook(hook);
        }
    }

    /** Adds λ·std(row)·z to every row (sample) of a feature tensor. */
    static final class Perturber {
        final long seed;
        final float lambda;
        long call;

        Perturber(long seed, float lambda) {
            this.seed = seed;
            this.lambda = lambda;
        }

        Tensor perturb(Tensor y, int site) {
            int n = y.dim(0), per = y.size() / Math.max(1, n);
            Tensor z = new SeededNoise(seed ^ 0x5EED5EEDL).normal(16 + site, 0, call, y.shape());
            float[] out = y.data().clone();
            float[] zd = z.data();
            for (int i = 0; i < n; i++) {
                double s = 0, ss = 0;
                for (int j = i * per; j < (i + 1) * per; j++) { s += out[j]; ss += (double) out[j] * out[j]; }
                double mean = s / per;
                float std = (float) Math.sqrt(Math.max(0, ss / per - mean * mean));
                float a = lambda * std;
                for (int j = i * per; j < (i + 1) * per; j++) out[j] += a * zd[j];
            }
            return Tensor.of(out, y.shape());
        }
    }

    static Tensor clampUnit(Tensor x) {
        float[] d = x.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = d[i] > 1f ? 1f : d[i] < -1f ? -1f : d[i];
        return Tensor.of(d, x.shape());
    }
}
