package io.diffquant.engine.metrics;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.train.AdamW;
import io.diffquant.engine.train.ClassifierObjective;
import io.diffquant.engine.train.Dataset;
import io.diffquant.engine.train.TrainConfig;
import io.diffquant.engine.train.TrainingRun;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The Fashion-MNIST feature network: forward against a naive loop implementation, determinism, folders, shipped accuracy. */
class FmnistClassifierTest {
    /** A tiny architecture for exact checks. */
    static final FmnistClassifier.Config TINY = new FmnistClassifier.Config(2, 3, 4, 3, 2);

    static Tensor randomImages(int n, long seed) {
        Random r = new Random(seed);
        float[] d = new float[n * 28 * 28];
        for (int i = 0; i < d.length; i++) d[i] = (float) (2 * r.nextDouble() - 1);
        return Tensor.of(d, n, 1, 28, 28);
    }

    // ------------------------------------------------------------------ naive reference forward (double, direct loops)

    static double[][][] conv3x3(double[][][] x, Tensor w, Tensor b) {
        int c = x.length, h = x[0].length, wd = x[0][0].length, o = w.dim(0);
        double[][][] y = new double[o][h][wd];
        for (int oc = 0; oc < o; oc++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < wd; j++) {
                    double s = b.data()[oc];
                    for (int ic = 0; ic < c; ic++)
                        for (int di = -1; di <= 1; di++)
                            for (int dj = -1; dj <= 1; dj++) {
                                int ii = i + di, jj = j + dj;
                                if (ii < 0 || ii >= h || jj < 0 || jj >= wd) continue;
                                s += x[ic][ii][jj] * w.get(oc, ic, di + 1, dj + 1);
                            }
                    y[oc][i][j] = Math.max(0, s);   // every conv is followed by ReLU
                }
        return y;
    }

    /** Max pooling 2x2 with ceil mode (a window hanging over the edge uses the pixels it covers). */
    static double[][][] maxPoolCeil(double[][][] x) {
        int c = x.length, h = x[0].length, w = x[0][0].length, ho = (h + 1) / 2, wo = (w + 1) / 2;
        double[][][] y = new double[c][ho][wo];
        for (int k = 0; k < c; k++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    double m = Double.NEGATIVE_INFINITY;
                    for (int a = 2 * i; a < Math.min(h, 2 * i + 2); a++)
                        for (int b = 2 * j; b < Math.min(w, 2 * j + 2); b++) m = Math.max(m, x[k][a][b]);
                    y[k][i][j] = m;
                }
        return y;
    }

    /** {penultimate, spatial, logits} of one image. */
    static double[][] naive(FmnistClassifier c, Tensor images, int img) {
        Map<String, Tensor> p = c.parameters();
        double[][][] x = new double[1][28][28];
        for (int i = 0; i < 28; i++) for (int j = 0; j < 28; j++) x[0][i][j] = images.get(img, 0, i, j);
        x = conv3x3(x, p.get("conv1.weight"), p.get("conv1.bias"));
        x = maxPoolCeil(conv3x3(x, p.get("conv2.weight"), p.get("conv2.bias")));
        x = conv3x3(x, p.get("conv3.weight"), p.get("conv3.bias"));
        double[][][] map = maxPoolCeil(conv3x3(x, p.get("conv4.weight"), p.get("conv4.bias")));
        int s = c.config().spatialChannels();
        double[] spatial = new double[s * 49];
        for (int k = 0; k < s; k++) for (int i = 0; i < 7; i++) for (int j = 0; j < 7; j++) spatial[k * 49 + i * 7 + j] = map[k][i][j];
        double[][][] pooled = maxPoolCeil(map);
        double[] flat = new double[c.config().flatDim()];
        int q = 0;
        for (double[][] ch : pooled) for (double[] row : ch) for (double v : row) flat[q++] = v;
        double[] pen = dense(flat, p.get("fc1.weight"), p.get("fc1.bias"));
        double[] act = new double[pen.length];
        for (int i = 0; i < pen.length; i++) act[i] = Math.max(0, pen[i]);
        return new double[][] {pen, spatial, dense(act, p.get("fc2.weight"), p.get("fc2.bias"))};
    }

    static double[] dense(double[] x, Tensor w, Tensor b) {
        int out = w.dim(0), in = w.dim(1);
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double s = b.data()[o];
            for (int i = 0; i < in; i++) s += w.data()[o * in + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    /** Random biases too, so that the bias paths are exercised. */
    static FmnistClassifier randomised(FmnistClassifier.Config cfg, long seed) {
        FmnistClassifier c = FmnistClassifier.create(cfg, seed);
        Random r = new Random(seed);
        for (var e : c.parameters().entrySet())
            if (e.getKey().endsWith(".bias")) for (int i = 0; i < e.getValue().size(); i++) e.getValue().data()[i] = (float) (0.2 * r.nextGaussian());
        return c;
    }

    @Test void forwardMatchesNaiveLoopsOnTinyArchitecture() {
        FmnistClassifier c = randomised(TINY, 3);
        Tensor x = randomImages(3, 11);
        FmnistClassifier.Features f = c.features(x, 2);
        assertArrayEquals(new int[] {3, 4}, f.penultimate().shape());
        assertArrayEquals(new int[] {3, 2 * 49}, f.spatial().shape());
        assertArrayEquals(new int[] {3, 3}, f.logits().shape());
        for (int i = 0; i < 3; i++) {
            double[][] ref = naive(c, x, i);
            Tensor[] got = {f.penultimate(), f.spatial(), f.logits()};
            for (int k = 0; k < 3; k++) {
                int d = got[k].dim(1);
                for (int j = 0; j < d; j++) assertEquals(ref[k][j], got[k].data()[i * d + j], 1e-4 * (1 + Math.abs(ref[k][j])),
                        "image " + i + ", output " + k + ", index " + j);
            }
        }
        // the recorded training path gives the same logits
        Tensor z = c.logits(x);
        for (int i = 0; i < z.size(); i++) assertEquals(f.logits().data()[i], z.data()[i], 1e-5);
    }

    @Test void defaultArchitectureShapesDeterminismAndBatchIndependence() {
        FmnistClassifier.Config cfg = FmnistClassifier.Config.defaults();
        FmnistClassifier a = FmnistClassifier.create(cfg, 7), b = FmnistClassifier.create(cfg, 7), c = FmnistClassifier.create(cfg, 8);
        assertEquals(197_482, a.parameterCount());
        for (String n : FmnistClassifier.PARAMETER_NAMES) assertArrayEquals(a.parameters().get(n).data(), b.parameters().get(n).data(), n);
        assertFalse(Arrays.equals(a.parameters().get("conv2.weight").data(), c.parameters().get("conv2.weight").data()));
        Tensor x = randomImages(5, 1);
        FmnistClassifier.Features f1 = a.features(x, 5), f2 = a.features(x, 2), f3 = b.features(x, 5);
        assertArrayEquals(new int[] {5, 128}, f1.penultimate().shape());
        assertArrayEquals(new int[] {5, 392}, f1.spatial().shape());
        assertArrayEquals(new int[] {5, 10}, f1.logits().shape());
        assertArrayEquals(f1.logits().data(), f3.logits().data(), "same seed, same weights, same outputs");
        for (int i = 0; i < f1.penultimate().size(); i++) assertEquals(f1.penultimate().data()[i], f2.penultimate().data()[i], 1e-4);
        for (int i = 0; i < f1.spatial().size(); i++) assertEquals(f1.spatial().data()[i], f2.spatial().data()[i], 1e-4);
        // the spatial features are the first channels of a ReLU map
        for (float v : f1.spatial().data()) assertTrue(v >= 0);
    }

    @Test void refusesOtherImageShapes() {
        FmnistClassifier c = FmnistClassifier.create(TINY, 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.features(Tensor.zeros(2, 3, 28, 28)));
        assertTrue(e.getMessage().contains("[N, 1, 28, 28]") && e.getMessage().contains("[2, 3, 28, 28]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> c.features(Tensor.zeros(2, 1, 32, 32)));
    }

    @Test void trainingStepsAreDeterministicAndLowerTheLossOnATinySet() {
        Tensor x = randomImages(16, 5);
        int[] y = new int[16];
        for (int i = 0; i < 16; i++) y[i] = i % 3;
        float[][] results = new float[2][];
        double first = 0, last = 0;
        for (int rep = 0; rep < 2; rep++) {
            FmnistClassifier c = randomised(new FmnistClassifier.Config(4, 8, 16, 3, 2), 1);
            TrainConfig tc = new TrainConfig(4, 16, 12, null, null, null, new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0), null, 0, 0, true);
            TrainingRun run = TrainingRun.start(c.parameters(), new ClassifierObjective(c::logits, 3, false), Dataset.of(x, y), tc);
            for (int s = 0; s < 12; s++) {
                double l = run.next().loss();
                if (s == 0) first = l;
                last = l;
            }
            results[rep] = c.parameters().get("fc1.weight").data().clone();
        }
        assertArrayEquals(results[0], results[1], "bitwise reproducible");
        assertTrue(last < 0.8 * first, "12 full-batch steps fit 16 images: loss " + first + " -> " + last);
    }

    static FashionMnist.Data syntheticData(FashionMnist.Split split, int n, long seed) {
        Random r = new Random(seed);
        byte[] px = new byte[n * 784];
        r.nextBytes(px);
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) labels[i] = r.nextInt(3);
        return new FashionMnist.Data(split, new io.diffquant.engine.io.IdxReader.Images(Path.of("synthetic"), n, 28, 28, px), labels);
    }

    /** The step decay continues the run through an exact resume: with factor 1 it equals the uninterrupted run bit for bit. */
    @Test void stepDecayPhasesResumeExactly() throws IOException {
        FmnistClassifier.Config cfg = new FmnistClassifier.Config(4, 8, 16, 3, 2);
        FashionMnist.Data train = syntheticData(FashionMnist.Split.TRAIN, 24, 1), test = syntheticData(FashionMnist.Split.TEST, 6, 2);
        FmnistClassifierTraining.Recipe plain = new FmnistClassifierTraining.Recipe(3, 8, 5, 1e-2, 1e-4, 1, 0, 1.0, 0.9, null);
        FmnistClassifierTraining.Recipe split1 = new FmnistClassifierTraining.Recipe(3, 8, 5, 1e-2, 1e-4, 1, 2, 1.0, 0.9, null);
        FmnistClassifierTraining.Recipe decayed = new FmnistClassifierTraining.Recipe(3, 8, 5, 1e-2, 1e-4, 1, 2, 0.1, 0.9, null);
        float[] a = FmnistClassifierTraining.train(cfg, plain, train, test, null, null).model().parameters().get("conv3.weight").data();
        FmnistClassifierTraining.Outcome o = FmnistClassifierTraining.train(cfg, split1, train, test, null, null);
        assertEquals(5, o.steps());
        assertArrayEquals(a, o.model().parameters().get("conv3.weight").data(), "factor 1: same weights as one uninterrupted run");
        float[] c = FmnistClassifierTraining.train(cfg, decayed, train, test, null, null).model().parameters().get("conv3.weight").data();
        assertFalse(Arrays.equals(a, c), "factor 0.1 changes the last steps");
        float[] c2 = FmnistClassifierTraining.train(cfg, decayed, train, test, null, null).model().parameters().get("conv3.weight").data();
        assertArrayEquals(c, c2, "reproducible");
        assertThrows(IllegalArgumentException.class, () -> new FmnistClassifierTraining.Recipe(3, 8, 5, 1e-2, 0, 1, 5, 0.1, 0.9, null));
    }

    @Test void folderRoundTripAndErrorsNameTheTensor(@TempDir Path tmp) throws IOException {
        FmnistClassifier c = randomised(TINY, 2);
        c.save(tmp, Map.of("note", "test"));
        FmnistClassifier back = FmnistClassifier.load(tmp);
        assertEquals(TINY, back.config());
        for (String n : FmnistClassifier.PARAMETER_NAMES) assertArrayEquals(c.parameters().get(n).data(), back.parameters().get(n).data(), n);

        Map<String, Tensor> sd = new LinkedHashMap<>(c.parameters());
        sd.remove("fc1.bias");
        SafetensorsWriter w = new SafetensorsWriter();
        sd.forEach(w::add);
        w.write(tmp.resolve(FmnistClassifier.WEIGHTS));
        IOException e = assertThrows(IOException.class, () -> FmnistClassifier.load(tmp));
        assertTrue(e.getMessage().contains("'fc1.bias' is missing") && e.getMessage().contains(FmnistClassifier.WEIGHTS), e.getMessage());

        sd.put("fc1.bias", Tensor.zeros(5));
        SafetensorsWriter w2 = new SafetensorsWriter();
        sd.forEach(w2::add);
        w2.write(tmp.resolve(FmnistClassifier.WEIGHTS));
        e = assertThrows(IOException.class, () -> FmnistClassifier.load(tmp));
        assertTrue(e.getMessage().contains("'fc1.bias' has shape [5], expected [4]"), e.getMessage());

        Files.writeString(tmp.resolve(FmnistClassifier.CONFIG), "{\"_class_name\": \"DiT\"}");
        e = assertThrows(IOException.class, () -> FmnistClassifier.load(tmp));
        assertTrue(e.getMessage().contains(FmnistClassifier.CONFIG) && e.getMessage().contains("FmnistClassifier"), e.getMessage());
        e = assertThrows(IOException.class, () -> FmnistClassifier.load(tmp.resolve("nope")));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }

    /** The shipped classifier on the first 2,000 test images (the card reports all 10,000). */
    @Test void shippedClassifierIsAccurateOnTheTestSet() throws IOException {
        FashionMnist fm = new FashionMnist();
        Assumptions.assumeTrue(fm.isAvailable(), "Fashion-MNIST not installed at " + fm.dir() + " (package dataset-fashion-mnist)");
        FmnistClassifier c = FmnistClassifier.load(FmnistMetrics.defaultFolder());
        FashionMnist.Data test = fm.load(FashionMnist.Split.TEST, 2000);
        double acc = c.features(test.imagesMinusOneOne(0, test.size())).accuracy(test.labels());
        assertTrue(acc >= 0.89, "test accuracy on the first 2000 test images: " + acc);
    }
}
