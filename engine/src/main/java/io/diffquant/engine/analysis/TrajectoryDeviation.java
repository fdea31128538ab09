package io.diffquant.engine.analysis;

import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Denoising trajectory deviation (TFMQ-DM, ALGORITHMS.md §6): a quantized model and the FP model sample from the same
 * initial noise and step noise ({@link io.diffquant.engine.diffusion.SeededNoise}); after every sampling step the
 * distance ||x_t^q - x_t^FP|| (L2 norm per sample, averaged over samples), the same relative to ||x_t^FP||, and the MSE.
 * The FP trajectory is the session's cached one.
 */
public final class TrajectoryDeviation {
    private TrajectoryDeviation() {}

    /**
     * One configuration's deviation after every step (index = step in sampling order).
     * @param l2       mean over samples of ||x_q - x_fp||₂
     * @param relative mean over samples of ||x_q - x_fp||₂ / ||x_fp||₂
     * @param mse      mean squared difference over all elements
     */
    public record Series(String config, double[] l2, double[] relative, double[] mse, double seconds) {
        /** The deviation of the final samples. */
        public double finalL2() { return l2[l2.length - 1]; }
    }

    /** @param timesteps the ORIGINAL timestep value of each step (sampling order) */
    public record Result(int[] timesteps, int samples, List<Series> configs) {
        public Result {
            timesteps = timesteps.clone();
            configs = List.copyOf(configs);
        }

        @Override public int[] timesteps() { return timesteps.clone(); }

        public Series config(String name) {
            for (Series s : configs) if (s.config().equals(name)) return s;
            throw new IllegalArgumentException("no configuration '" + name + "' in this result");
        }
    }

    public static Result evaluate(AnalysisSession session, List<Variant> variants) {
        AnalysisSession.Trajectory fp = session.fpTrajectory();
        List<Series> out = new ArrayList<>();
        for (Variant v : variants) {
            long t0 = System.nanoTime();
            AnalysisSession.Trajectory q = session.trajectory(v);
            Series s = compare(v.name(), fp, q);
            out.add(new Series(s.config(), s.l2(), s.relative(), s.mse(), (System.nanoTime() - t0) / 1e9));
        }
        return new Result(fp.timesteps(), fp.samples().dim(0), out);
    }

    /** The deviation of trajectory {@code q} from {@code fp} (same steps and sample count). */
    public static Series compare(String name, AnalysisSession.Trajectory fp, AnalysisSession.Trajectory q) {
        if (fp.steps() != q.steps()) throw new IllegalArgumentException("trajectory of '" + name + "' has " + q.steps()
                + " steps, the FP one " + fp.steps());
        int steps = fp.steps();
        double[] l2 = new double[steps], rel = new double[steps], mse = new double[steps];
        for (int k = 0; k < steps; k++) {
            Tensor a = fp.states().get(k), b = q.states().get(k);
            if (!a.sameShape(b)) throw new IllegalArgumentException("trajectory of '" + name + "' at step " + k + " has another shape than the FP one");
            int n = a.dim(0), per = a.size() / n;
            float[] ad = a.data(), bd = b.data();
            double sumL2 = 0, sumRel = 0, sumSq = 0;
            for (int i = 0; i < n; i++) {
                double dd = 0, aa = 0;
                for (int j = i * per; j < (i + 1) * per; j++) {
                    double diff = (double) bd[j] - ad[j];
                    dd += diff * diff;
                    aa += (double) ad[j] * ad[j];
                }
                sumL2 += Math.sqrt(dd);
                sumRel += aa > 0 ? Math.sqrt(dd / aa) : (dd == 0 ? 0 : Double.POSITIVE_INFINITY);
                sumSq += dd;
            }
            l2[k] = sumL2 / n;
            rel[k] = sumRel / n;
            mse[k] = sumSq / a.size();
        }
        return new Series(name, l2, rel, mse, 0);
    }
}
