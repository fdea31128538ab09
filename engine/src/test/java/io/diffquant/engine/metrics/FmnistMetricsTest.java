package io.diffquant.engine.metrics;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The metrics facade: exact cases on a tiny random classifier, then the shipped classifier on real images and noise. */
class FmnistMetricsTest {

    static FmnistMetrics tinyMetrics(Tensor realImages) {
        FmnistClassifier c = FmnistClassifierTest.randomised(FmnistClassifierTest.TINY, 5);
        return new FmnistMetrics(c, FmnistReferenceStats.compute(c, realImages, null), "tiny");
    }

    @Test void sameImagesAsTheReferenceGiveZeroDistancesAndPerfectSimilarity() {
        Tensor real = FmnistClassifierTest.randomImages(40, 3);
        FmnistMetrics m = tinyMetrics(real);
        FmnistClassifier.Features f = m.classifier().features(real);
        int[] labels = f.predictions().clone();
        labels[0] = (labels[0] + 1) % 3;           // exactly one wrong label: 39 / 40 correct
        MetricsTable t = m.evaluate("t", Map.of("model", "x"), real, labels, real);
        assertEquals(List.of(MetricsTable.FID_FMNIST, MetricsTable.SFID_FMNIST, MetricsTable.IS_FMNIST, MetricsTable.CLASS_ACCURACY,
                MetricsTable.MSE, MetricsTable.PSNR, MetricsTable.SSIM), t.rows().stream().map(MetricsTable.Row::metric).toList());
        assertEquals(0.0, t.row(MetricsTable.FID_FMNIST).orElseThrow().value(), 1e-6);
        assertEquals(0.0, t.row(MetricsTable.SFID_FMNIST).orElseThrow().value(), 1e-6);
        assertEquals(m.reference().fidFloor(), t.row(MetricsTable.FID_FMNIST).orElseThrow().floor().getAsDouble(), 0.0);
        assertEquals(m.reference().sfidFloor(), t.row(MetricsTable.SFID_FMNIST).orElseThrow().floor().getAsDouble(), 0.0);
        assertEquals(97.5, t.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value(), 1e-12);
        assertEquals("%", t.row(MetricsTable.CLASS_ACCURACY).orElseThrow().unit());
        assertEquals(0.0, t.row(MetricsTable.MSE).orElseThrow().value(), 0.0);
        assertEquals(Double.POSITIVE_INFINITY, t.row(MetricsTable.PSNR).orElseThrow().value());
        assertEquals(1.0, t.row(MetricsTable.SSIM).orElseThrow().value(), 1e-12);
        double is = t.row(MetricsTable.IS_FMNIST).orElseThrow().value();
        assertTrue(is >= 1 - 1e-9 && is <= 3 + 1e-9, "IS lies in [1, classes]: " + is);
        assertEquals("x", t.info().get("model"));
        assertEquals("40", t.info().get("images"));
        assertEquals("1", t.info().get("IS-FMNIST splits"));
        assertTrue(t.info().get("FID reference").contains("not Inception"), t.info().toString());
    }

    @Test void constantShiftGivesAnalyticMseAndPsnrAndNoLabelsNoReferenceMeansFewerRows() {
        Tensor real = FmnistClassifierTest.randomImages(20, 4);
        FmnistMetrics m = tinyMetrics(real);
        Tensor shifted = real.copy();
        for (int i = 0; i < shifted.size(); i++) shifted.data()[i] += 0.02f;
        MetricsTable t = m.evaluate(shifted, null, real);
        double mse = t.row(MetricsTable.MSE).orElseThrow().value();
        assertEquals(4e-4, mse, 1e-8);
        assertEquals(10 * Math.log10(4.0 / mse), t.row(MetricsTable.PSNR).orElseThrow().value(), 1e-9);
        assertEquals(40.0, t.row(MetricsTable.PSNR).orElseThrow().value(), 1e-3);
        assertTrue(t.row(MetricsTable.CLASS_ACCURACY).isEmpty(), "no labels, no class accuracy");
        MetricsTable bare = m.evaluate(shifted, null, null);
        assertEquals(List.of(MetricsTable.FID_FMNIST, MetricsTable.SFID_FMNIST, MetricsTable.IS_FMNIST),
                bare.rows().stream().map(MetricsTable.Row::metric).toList());
        assertTrue(bare.row(MetricsTable.FID_FMNIST).orElseThrow().value() > 0, "a shifted set is not the reference set");
    }

    @Test void inceptionScoreSplitsKeepAtLeastAHundredImagesPerSplit() {
        assertEquals(1, FmnistMetrics.inceptionScoreSplits(2));
        assertEquals(1, FmnistMetrics.inceptionScoreSplits(199));
        assertEquals(2, FmnistMetrics.inceptionScoreSplits(250));
        assertEquals(10, FmnistMetrics.inceptionScoreSplits(1000));
        assertEquals(10, FmnistMetrics.inceptionScoreSplits(50_000));
    }

    @Test void badInputsAreClearErrors() {
        Tensor real = FmnistClassifierTest.randomImages(10, 6);
        FmnistMetrics m = tinyMetrics(real);
        String msg = assertThrows(IllegalArgumentException.class, () -> m.evaluate(Tensor.zeros(4, 3, 28, 28), null, null)).getMessage();
        assertTrue(msg.contains("[N, 1, 28, 28]") && msg.contains("[4, 3, 28, 28]"), msg);
        msg = assertThrows(IllegalArgumentException.class, () -> m.evaluate(real.sliceRows(0, 1), null, null)).getMessage();
        assertTrue(msg.contains("at least 2 images"), msg);
        Tensor nan = real.copy();
        nan.data()[5 * 784 + 3] = Float.NaN;
        msg = assertThrows(IllegalArgumentException.class, () -> m.evaluate(nan, null, null)).getMessage();
        assertTrue(msg.contains("non-finite") && msg.contains("image 5"), msg);
        msg = assertThrows(IllegalArgumentException.class, () -> m.evaluate(real, new int[3], null)).getMessage();
        assertTrue(msg.contains("3 labels for 10 images"), msg);
        int[] bad = new int[10];
        bad[7] = 3;
        msg = assertThrows(IllegalArgumentException.class, () -> m.evaluate(real, bad, null)).getMessage();
        assertTrue(msg.contains("label[7] = 3"), msg);
        msg = assertThrows(IllegalArgumentException.class, () -> m.evaluate(real, null, real.sliceRows(0, 9))).getMessage();
        assertTrue(msg.contains("reference images are [9, 1, 28, 28]"), msg);
        FmnistClassifier other = FmnistClassifier.create(new FmnistClassifier.Config(2, 3, 5, 3, 2), 0);
        msg = assertThrows(IllegalArgumentException.class, () -> new FmnistMetrics(other, m.reference(), "x")).getMessage();
        assertTrue(msg.contains("dimension 4") && msg.contains("5"), msg);
    }

    // ------------------------------------------------------------------ the shipped classifier

    static FmnistMetrics shipped() throws IOException {
        FashionMnist fm = new FashionMnist();
        Assumptions.assumeTrue(fm.isAvailable(), "Fashion-MNIST not installed at " + fm.dir() + " (package dataset-fashion-mnist)");
        return FmnistMetrics.loadDefault();
    }

    @Test void realTestImagesScoreNearTheFloorAndAreClassifiedCorrectly() throws IOException {
        FmnistMetrics m = shipped();
        FashionMnist.Data test = new FashionMnist().load(FashionMnist.Split.TEST, 1000);
        MetricsTable t = m.evaluate(test.imagesMinusOneOne(0, 1000), test.labels(), null);
        double fid = t.row(MetricsTable.FID_FMNIST).orElseThrow().value(), floor = m.reference().fidFloor();
        // 1000 of the 10000 reference images: only the estimation noise of a 1000-image covariance
        assertTrue(fid < 5 * floor, "FID-FMNIST of 1000 real test images " + fid + ", floor " + floor);
        assertTrue(t.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value() >= 89.0, t.toText());
        assertTrue(t.row(MetricsTable.IS_FMNIST).orElseThrow().value() > 7.0, "real images are confidently and evenly classified: " + t.toText());
        assertEquals("10", t.info().get("IS-FMNIST splits"));
    }

    @Test void pureNoiseScoresFarAboveTheFloorAndNearChanceAccuracy() throws IOException {
        FmnistMetrics m = shipped();
        int n = 500;
        Random r = new Random(9);
        float[] d = new float[n * 784];
        for (int i = 0; i < d.length; i++) d[i] = (float) Math.max(-1, Math.min(1, r.nextGaussian()));
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) labels[i] = i % 10;
        MetricsTable t = m.evaluate(Tensor.of(d, n, 1, 28, 28), labels, null);
        double fid = t.row(MetricsTable.FID_FMNIST).orElseThrow().value(), floor = m.reference().fidFloor();
        assertTrue(fid > 100 * floor, "FID-FMNIST of noise " + fid + ", floor " + floor);
        assertTrue(t.row(MetricsTable.SFID_FMNIST).orElseThrow().value() > 20 * m.reference().sfidFloor(), t.toText());
        double acc = t.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value();
        assertTrue(acc <= 20.0, "noise is not classified as the cycled labels: " + acc + " %");
    }
}
