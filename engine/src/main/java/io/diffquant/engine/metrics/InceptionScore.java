package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;

/**
 * Inception Score (Salimans et al. 2016) from class probabilities, exp(E_x KL(p(y|x) || p(y))), ALGORITHMS.md §9,
 * computed as openai/improved-gan's {@code inception_score.py}: the N predictions are cut into {@code splits}
 * consecutive parts [i·N/splits, (i+1)·N/splits) (integer division), each part gets
 * exp(mean_x Σ_y p(y|x) (log p(y|x) - log p̄(y))) with p̄ the part's mean prediction, and the result is the mean
 * and the population standard deviation (numpy's default, ddof = 0) of these split scores. Terms with
 * p(y|x) = 0 count as 0 (0 · log 0 = 0, as scipy.stats.entropy).
 *
 * <p>The classifier here is the product's own (e.g. the Fashion-MNIST classifier), not Inception-v3: report it under
 * a name such as "IS-FMNIST".
 */
public final class InceptionScore {
    private InceptionScore() {}

    /** Tolerance on |Σ_y p(y|x) - 1| for probability rows. */
    public static final double SUM_TOLERANCE = 1e-4;

    /**
     * @param mean        mean of the split scores (the reported IS)
     * @param std         population standard deviation of the split scores (0 for one split)
     * @param splitScores score of each split
     */
    public record Result(double mean, double std, double[] splitScores) {
        public int splits() { return splitScores.length; }
    }

    /** IS of class probabilities [N][K] over {@code splits} parts (1 <= splits <= N). */
    public static Result fromProbabilities(double[][] probs, int splits) {
        int k = checkProbabilities(probs);
        int n = probs.length;
        if (splits < 1 || splits > n) throw new IllegalArgumentException(
                "Inception score: splits must be in 1.." + n + " for " + n + " predictions, got " + splits);
        double[] scores = new double[splits];
        for (int s = 0; s < splits; s++) {
            int from = (int) ((long) s * n / splits), to = (int) ((long) (s + 1) * n / splits);
            scores[s] = splitScore(probs, from, to, k);
        }
        double mean = 0;
        for (double v : scores) mean += v;
        mean /= splits;
        double var = 0;
        for (double v : scores) var += (v - mean) * (v - mean);
        return new Result(mean, Math.sqrt(var / splits), scores);
    }

    /** IS of a probability tensor [N, K]. */
    public static Result fromProbabilities(Tensor probs, int splits) {
        return fromProbabilities(rows("probabilities", probs, false), splits);
    }

    /** IS of classifier logits [N, K] (softmax taken in double). */
    public static Result fromLogits(Tensor logits, int splits) {
        return fromProbabilities(rows("logits", logits, true), splits);
    }

    /** IS of classifier logits [N][K] (softmax taken in double). */
    public static Result fromLogits(double[][] logits, int splits) {
        if (logits == null || logits.length == 0) throw new IllegalArgumentException("Inception score: no logits");
        double[][] p = new double[logits.length][];
        for (int i = 0; i < logits.length; i++) p[i] = softmax(logits[i], i);
        return fromProbabilities(p, splits);
    }

    /** Row-wise softmax in double with the maximum subtracted. */
    public static double[] softmax(double[] logits, int row) {
        if (logits == null || logits.length == 0) throw new IllegalArgumentException(
                "Inception score: logit row " + row + " is empty");
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < logits.length; j++) {
            if (!Double.isFinite(logits[j])) throw new IllegalArgumentException(
                    "Inception score: non-finite logit " + logits[j] + " at (" + row + ", " + j + ")");
            max = Math.max(max, logits[j]);
        }
        double[] p = new double[logits.length];
        double s = 0;
        for (int j = 0; j < p.length; j++) {
            p[j] = Math.exp(logits[j] - max);
            s += p[j];
        }
        for (int j = 0; j < p.length; j++) p[j] /= s;
        return p;
    }

    private static double splitScore(double[][] probs, int from, int to, int k) {
        int m = to - from;
        double[] marginal = new double[k];
        for (int i = from; i < to; i++) for (int j = 0; j < k; j++) marginal[j] += probs[i][j];
        double[] logMarginal = new double[k];
        for (int j = 0; j < k; j++) logMarginal[j] = Math.log(marginal[j] / m);
        double kl = 0;
        for (int i = from; i < to; i++) {
            double[] p = probs[i];
            double row = 0;
            for (int j = 0; j < k; j++) if (p[j] > 0) row += p[j] * (Math.log(p[j]) - logMarginal[j]);
            kl += row;
        }
        return Math.exp(kl / m);
    }

    private static int checkProbabilities(double[][] probs) {
        if (probs == null || probs.length == 0) throw new IllegalArgumentException("Inception score: no predictions");
        int k = -1;
        for (int i = 0; i < probs.length; i++) {
            double[] p = probs[i];
            if (p == null || p.length == 0) throw new IllegalArgumentException(
                    "Inception score: prediction row " + i + " is empty");
            if (k < 0) k = p.length;
            else if (p.length != k) throw new IllegalArgumentException(
                    "Inception score: prediction row " + i + " has " + p.length + " classes, expected " + k);
            double s = 0;
            for (int j = 0; j < k; j++) {
                if (!(p[j] >= 0) || p[j] > 1 + SUM_TOLERANCE) throw new IllegalArgumentException(
                        "Inception score: probability " + p[j] + " at (" + i + ", " + j + ") is not in [0, 1]"
                                + " (pass logits to fromLogits)");
                s += p[j];
            }
            if (Math.abs(s - 1) > SUM_TOLERANCE) throw new IllegalArgumentException("Inception score: prediction row "
                    + i + " sums to " + s + ", expected 1 (pass logits to fromLogits)");
        }
        return k;
    }

    private static double[][] rows(String what, Tensor t, boolean logits) {
        if (t == null || t.rank() != 2 || t.dim(0) == 0 || t.dim(1) == 0) throw new IllegalArgumentException(
                "Inception score: " + what + " must be a non-empty [N, K] tensor, got " + t);
        int n = t.dim(0), k = t.dim(1);
        float[] d = t.data();
        double[][] out = new double[n][k];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < k; j++) out[i][j] = d[i * k + j];
            if (logits) out[i] = softmax(out[i], i);
        }
        return out;
    }
}
