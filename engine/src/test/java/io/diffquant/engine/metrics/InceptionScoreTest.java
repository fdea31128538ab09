package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Inception Score: uniform -> 1, balanced one-hot -> K, a hand-computed pair, split boundaries and std. */
class InceptionScoreTest {
    private static double[][] oneHot(int n, int k) {
        double[][] p = new double[n][k];
        for (int i = 0; i < n; i++) p[i][i % k] = 1;
        return p;
    }

    @Test void uniformPredictionsScoreOne() {
        double[][] p = new double[30][7];
        for (double[] row : p) java.util.Arrays.fill(row, 1.0 / 7);
        InceptionScore.Result r = InceptionScore.fromProbabilities(p, 3);
        assertEquals(1.0, r.mean(), 1e-12);
        assertEquals(0.0, r.std(), 1e-12);
        assertEquals(3, r.splits());
    }

    @Test void balancedOneHotPredictionsScoreK() {
        assertEquals(10.0, InceptionScore.fromProbabilities(oneHot(50, 10), 1).mean(), 1e-12);
        // 40 rows, 4 splits of 10, each holding classes 0..4 twice: every split scores 5
        InceptionScore.Result r = InceptionScore.fromProbabilities(oneHot(40, 5), 4);
        assertArrayEquals(new double[] {5, 5, 5, 5}, r.splitScores(), 1e-12);
        assertEquals(5.0, r.mean(), 1e-12);
        assertEquals(0.0, r.std(), 1e-12);
        // all predictions on one class: no diversity, score 1
        double[][] same = new double[12][4];
        for (double[] row : same) row[2] = 1;
        assertEquals(1.0, InceptionScore.fromProbabilities(same, 2).mean(), 1e-12);
    }

    @Test void twoPredictionsByHand() {
        // p1 = (0.9, 0.1), p2 = (0.1, 0.9): p(y) = (0.5, 0.5) and both KLs are 0.9 ln 1.8 + 0.1 ln 0.2
        double kl = 0.9 * Math.log(1.8) + 0.1 * Math.log(0.2);
        InceptionScore.Result r = InceptionScore.fromProbabilities(new double[][] {{0.9, 0.1}, {0.1, 0.9}}, 1);
        assertEquals(Math.exp(kl), r.mean(), 1e-14);
        // the same through logits: softmax(0, ln 9) = (0.1, 0.9)
        InceptionScore.Result l = InceptionScore.fromLogits(
                Tensor.of(new float[] {(float) Math.log(9), 0, 0, (float) Math.log(9)}, 2, 2), 1);
        assertEquals(Math.exp(kl), l.mean(), 1e-7);
    }

    @Test void splitBoundariesAndStdFollowTheReferenceCode() {
        // N = 5, splits = 2 -> parts [0, 2) and [2, 5) (i·N/splits): two uniform rows (score 1), then the three
        // one-hot rows of K = 3 (score 3): mean 2, population std 1
        double u = 1.0 / 3;
        double[][] p = {{u, u, u}, {u, u, u}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
        InceptionScore.Result r = InceptionScore.fromProbabilities(p, 2);
        assertArrayEquals(new double[] {1, 3}, r.splitScores(), 1e-12);
        assertEquals(2.0, r.mean(), 1e-12);
        assertEquals(1.0, r.std(), 1e-12);
    }

    @Test void logitsAreSoftmaxedStably() {
        double[][] logits = {{1000, 1000, 990}, {-5, 3, 0.5}, {0, 0, 0}};
        double[][] probs = new double[3][];
        for (int i = 0; i < 3; i++) {
            double m = Math.max(logits[i][0], Math.max(logits[i][1], logits[i][2]));
            double s = 0;
            probs[i] = new double[3];
            for (int j = 0; j < 3; j++) s += probs[i][j] = Math.exp(logits[i][j] - m);
            for (int j = 0; j < 3; j++) probs[i][j] /= s;
        }
        assertEquals(InceptionScore.fromProbabilities(probs, 1).mean(), InceptionScore.fromLogits(logits, 1).mean(), 1e-14);
        assertTrue(Double.isFinite(InceptionScore.fromLogits(logits, 1).mean()));
    }

    @Test void rejectsBadInput() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> InceptionScore.fromProbabilities(new double[][] {{0.5, 0.6}}, 1));
        assertTrue(e.getMessage().contains("sums to"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> InceptionScore.fromProbabilities(new double[][] {{1.5, -0.5}}, 1));
        assertTrue(e.getMessage().contains("not in [0, 1]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> InceptionScore.fromProbabilities(oneHot(3, 2), 4));
        assertTrue(e.getMessage().contains("splits"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> InceptionScore.fromProbabilities(new double[][] {{1, 0}, {1}}, 1));
        assertTrue(e.getMessage().contains("row 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> InceptionScore.fromLogits(Tensor.zeros(4), 1));
        assertTrue(e.getMessage().contains("[N, K]"), e.getMessage());
    }
}
