package io.diffquant.engine.metrics;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The stored test-set statistics and real-data floors: file format, and reproduction from the real data. */
class FmnistReferenceStatsTest {

    /** N rows of d Gaussian features with a random mean and correlations. */
    static Tensor gaussianFeatures(int n, int d, long seed) {
        Random r = new Random(seed);
        double[][] mix = new double[d][d];
        for (double[] row : mix) for (int j = 0; j < d; j++) row[j] = r.nextGaussian() / Math.sqrt(d);
        double[] mu = new double[d];
        for (int j = 0; j < d; j++) mu[j] = 3 * r.nextGaussian();
        float[] out = new float[n * d];
        double[] z = new double[d];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) z[j] = r.nextGaussian();
            for (int j = 0; j < d; j++) {
                double s = mu[j];
                for (int k = 0; k < d; k++) s += mix[j][k] * z[k];
                out[i * d + j] = (float) s;
            }
        }
        return Tensor.of(out, n, d);
    }

    static FmnistClassifier.Features syntheticFeatures(int n) {
        return new FmnistClassifier.Features(gaussianFeatures(n, 6, 1), gaussianFeatures(n, 10, 2), Tensor.zeros(n, 3));
    }

    @Test void floorIsZeroForIdenticalHalvesAndPositiveForIndependentOnes() {
        // two identical halves: the halves' Gaussians are equal, so the floor is 0 up to rounding
        FmnistClassifier.Features half = syntheticFeatures(50);
        FmnistClassifier.Features twice = new FmnistClassifier.Features(Tensor.concatRows(half.penultimate(), half.penultimate()),
                Tensor.concatRows(half.spatial(), half.spatial()), Tensor.zeros(100, 3));
        FmnistReferenceStats same = FmnistReferenceStats.fromFeatures(twice, null);
        assertEquals(0.0, same.fidFloor(), 1e-9);
        assertEquals(0.0, same.sfidFloor(), 1e-9);
        assertEquals(100, same.count());
        FmnistReferenceStats s = FmnistReferenceStats.fromFeatures(syntheticFeatures(400), Map.of("dataset", "synthetic"));
        assertTrue(s.fidFloor() > 0 && s.sfidFloor() > 0);
        // the floor is the FID of the two halves, recomputed independently here
        FmnistClassifier.Features f = syntheticFeatures(400);
        double expected = FrechetDistance.compute(GaussianStats.fit(f.penultimate().sliceRows(0, 200)), GaussianStats.fit(f.penultimate().sliceRows(200, 400)));
        assertEquals(expected, s.fidFloor(), 1e-12);
        assertEquals("images [0, 200) vs [200, 400)", s.metadata().get(FmnistReferenceStats.META_FLOOR_SPLIT));
        assertEquals("synthetic", s.metadata().get("dataset"));
    }

    @Test void writeLoadRoundTripKeepsValuesToFloat32(@TempDir Path tmp) throws IOException {
        FmnistReferenceStats s = FmnistReferenceStats.fromFeatures(syntheticFeatures(300), Map.of("classifier_sha256", "abc"));
        Path file = tmp.resolve(FmnistReferenceStats.FILE);
        s.write(file);
        FmnistReferenceStats back = FmnistReferenceStats.load(file);
        assertEquals(s.fidFloor(), back.fidFloor(), 0.0, "floors are stored as exact decimal strings");
        assertEquals(s.sfidFloor(), back.sfidFloor(), 0.0);
        assertEquals(300, back.count());
        assertEquals("abc", back.metadata().get("classifier_sha256"));
        for (GaussianStats[] p : new GaussianStats[][] {{s.fid(), back.fid()}, {s.sfid(), back.sfid()}}) {
            double[] m0 = p[0].mean(), m1 = p[1].mean(), c0 = p[0].covarianceFlat(), c1 = p[1].covarianceFlat();
            for (int i = 0; i < m0.length; i++) assertEquals(m0[i], m1[i], 1e-6 * Math.abs(m0[i]) + 1e-12);
            for (int i = 0; i < c0.length; i++) assertEquals(c0[i], c1[i], 1e-6 * Math.abs(c0[i]) + 1e-12);
            // float32 storage moves the distance to the original by a negligible amount
            assertEquals(0.0, FrechetDistance.compute(p[0], p[1]), 1e-5);
        }
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            assertEquals(java.util.List.of(FmnistReferenceStats.FID_MU, FmnistReferenceStats.FID_SIGMA, FmnistReferenceStats.SFID_MU,
                    FmnistReferenceStats.SFID_SIGMA), r.names().stream().sorted().toList());
            assertArrayEquals(new int[] {10, 10}, r.readFloat(FmnistReferenceStats.SFID_SIGMA).shape());
        }
    }

    @Test void loadErrorsNameFileAndKey(@TempDir Path tmp) throws IOException {
        Path missing = tmp.resolve("none.safetensors");
        IOException e = assertThrows(IOException.class, () -> FmnistReferenceStats.load(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());

        Path noFloor = tmp.resolve("nofloor.safetensors");
        new SafetensorsWriter().metadata("count", "10").add(FmnistReferenceStats.FID_MU, Tensor.zeros(2)).write(noFloor);
        e = assertThrows(IOException.class, () -> FmnistReferenceStats.load(noFloor));
        assertTrue(e.getMessage().contains(noFloor.toString()) && e.getMessage().contains("'fid_floor'"), e.getMessage());

        Path noSigma = tmp.resolve("nosigma.safetensors");
        new SafetensorsWriter().metadata("count", "10").metadata("fid_floor", "1.5").metadata("sfid_floor", "2")
                .add(FmnistReferenceStats.FID_MU, Tensor.zeros(2)).write(noSigma);
        e = assertThrows(IOException.class, () -> FmnistReferenceStats.load(noSigma));
        assertTrue(e.getMessage().contains("'fid.sigma' is missing"), e.getMessage());

        Path badShape = tmp.resolve("shape.safetensors");
        new SafetensorsWriter().metadata("count", "10").metadata("fid_floor", "1.5").metadata("sfid_floor", "2")
                .add(FmnistReferenceStats.FID_MU, Tensor.zeros(2)).add(FmnistReferenceStats.FID_SIGMA, Tensor.zeros(3, 3))
                .add(FmnistReferenceStats.SFID_MU, Tensor.zeros(1)).add(FmnistReferenceStats.SFID_SIGMA, Tensor.zeros(1, 1)).write(badShape);
        e = assertThrows(IOException.class, () -> FmnistReferenceStats.load(badShape));
        assertTrue(e.getMessage().contains(badShape.toString()) && e.getMessage().contains("sigma"), e.getMessage());

        Path badFloor = tmp.resolve("badfloor.safetensors");
        new SafetensorsWriter().metadata("count", "10").metadata("fid_floor", "-1").metadata("sfid_floor", "2")
                .add(FmnistReferenceStats.FID_MU, Tensor.zeros(2)).write(badFloor);
        e = assertThrows(IOException.class, () -> FmnistReferenceStats.load(badFloor));
        assertTrue(e.getMessage().contains("'fid_floor'") && e.getMessage().contains("-1"), e.getMessage());
    }

    // ------------------------------------------------------------------ the shipped statistics on the real test set

    /**
     * One pass of the shipped classifier over the 10,000 test images (about 10-20 s on the shared 2-core machine):
     * the floors recomputed from the two halves equal the stored ones, the Gaussians refitted on all images equal the
     * stored ones, and a 2,000-image subset lands within the floor of them.
     */
    @Test void shippedStatisticsReproduceFromTheTestSet() throws IOException {
        FashionMnist fm = new FashionMnist();
        Assumptions.assumeTrue(fm.isAvailable(), "Fashion-MNIST not installed at " + fm.dir() + " (package dataset-fashion-mnist)");
        Path folder = FmnistMetrics.defaultFolder();
        FmnistReferenceStats stored = FmnistReferenceStats.load(folder.resolve(FmnistReferenceStats.FILE));
        assertEquals(10_000, stored.count());
        assertEquals(ModelFolder.sha256(folder.resolve(FmnistClassifier.WEIGHTS)), stored.metadata().get(FmnistReferenceStats.META_CLASSIFIER_SHA256),
                "the statistics belong to the shipped weights");
        String card = Files.readString(folder.resolve(FmnistClassifierTraining.CARD));
        assertTrue(card.contains(String.format(Locale.ROOT, "%.4f", stored.fidFloor())), "the card records the FID floor");
        assertTrue(card.contains(String.format(Locale.ROOT, "%.4f", stored.sfidFloor())), "the card records the sFID floor");

        FmnistClassifier c = FmnistClassifier.load(folder);
        FashionMnist.Data test = fm.load(FashionMnist.Split.TEST);
        FmnistClassifier.Features f = c.features(test.imagesMinusOneOne(0, test.size()));
        FmnistReferenceStats again = FmnistReferenceStats.fromFeatures(f, null);
        assertEquals(stored.fidFloor(), again.fidFloor(), 1e-4 * stored.fidFloor(), "FID-FMNIST floor: test[0:5000] vs test[5000:10000]");
        assertEquals(stored.sfidFloor(), again.sfidFloor(), 1e-4 * stored.sfidFloor(), "sFID-FMNIST floor");
        assertEquals(0.0, FrechetDistance.compute(stored.fid(), again.fid()), 1e-3 * stored.fidFloor());
        assertEquals(0.0, FrechetDistance.compute(stored.sfid(), again.sfid()), 1e-3 * stored.sfidFloor());

        GaussianStats sub = GaussianStats.fit(f.penultimate().sliceRows(0, 2000));
        double[] m0 = stored.fid().mean(), m1 = sub.mean();
        double[][] cov = stored.fid().covariance();
        for (int j = 0; j < m0.length; j++) assertEquals(m0[j], m1[j], 5 * Math.sqrt(cov[j][j] / 2000) + 1e-9, "mean " + j);
        double subFid = FrechetDistance.compute(sub, stored.fid());
        assertTrue(subFid < 2 * stored.fidFloor(), "FID-FMNIST of 2000 test images vs the stats " + subFid + ", floor " + stored.fidFloor());
        double subSfid = FrechetDistance.compute(GaussianStats.fit(f.spatial().sliceRows(0, 2000)), stored.sfid());
        assertTrue(subSfid < 2 * stored.sfidFloor(), "sFID-FMNIST of 2000 test images vs the stats " + subSfid + ", floor " + stored.sfidFloor());
    }
}
