package io.diffquant.app.gui.vm;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The side-by-side generation on a tiny random 28x28x1 DiT: calibration on demand, the three columns from the same
 * noise, heatmaps and metrics checked against independent computations, hooks always detached.
 */
class GenerationRunTest {
    @TempDir Path tmp;
    private DiT model;
    private LayerTableViewModel layers;
    private QuantViewModel quant;
    private GenerationViewModel gen;

    @BeforeEach void setUp() {
        model = TinyModels.dit(2);
        layers = new LayerTableViewModel();
        layers.setModel(model);
        quant = new QuantViewModel(layers, tmp.resolve("cache"));
        quant.setContext(TinyModels.context(model));
        gen = new GenerationViewModel();
        gen.setModel(model);
        gen.imageCountProperty().set(2);
        gen.stepsProperty().set(3);
        gen.cfgScaleProperty().set(1.0);
        gen.labelsProperty().set("3, 7");
    }

    private GenerationRun.Column column(QuantViewModel.Target t) { return new GenerationRun.Column(t, quant.request(t), quant.cached(t)); }

    private static FmnistMetrics shippedMetrics() throws Exception {
        Path dir = Path.of(System.getProperty("diffquant.root", ".."), FmnistMetrics.ASSET_DIR);
        assumeTrue(Files.isDirectory(dir), "shipped classifier missing at " + dir);
        return FmnistMetrics.load(dir);
    }

    @Test void threeColumnsFromTheSameNoiseWithHeatmapsAndMetrics() throws Exception {
        quant.baselineProperty().set(new MethodChoice("rtn", Map.of("w_bits", 8, "a_bits", 8)));
        quant.applyPreset(new MethodChoice("rtn", Map.of("w_bits", 4, "a_bits", 8)));
        SampleRequest req = gen.buildRequest();
        FmnistMetrics fm = shippedMetrics();
        List<Double> fractions = new ArrayList<>();
        AtomicInteger published = new AtomicInteger();
        GenerationRun run = new GenerationRun(model, req, column(quant.baselineTarget()), column(quant.currentTarget()), () -> fm, "jvm");
        GenerationOutcome o = run.run(() -> false, x -> published.incrementAndGet(), (f, m) -> fractions.add(f));
        assertFalse(TinyModels.hooked(model), "every configuration detached");
        // every column says where it ran (the execution backend's label)
        assertTrue(o.notes().stream().anyMatch(n -> n.startsWith("FP32 ran on jvm")), o.notes().toString());
        assertTrue(o.notes().stream().anyMatch(n -> n.startsWith("Current config ran on jvm: fake quantization")), o.notes().toString());

        // progress is monotone and ends at 1; outcomes were published live (at least once per step of each column)
        for (int i = 1; i < fractions.size(); i++) assertTrue(fractions.get(i) >= fractions.get(i - 1) - 1e-12, "progress went back at " + i);
        assertEquals(1.0, fractions.getLast(), 1e-12);
        assertTrue(published.get() >= 9, "published " + published.get());

        // all three columns complete, same frames
        for (GenerationResult r : List.of(o.fp(), o.baseline(), o.current())) {
            assertEquals(3, r.stepsDone(), r.label());
            assertArrayEquals(o.fp().timesteps(), r.timesteps(), r.label());
        }
        // FP32 column = plain sampling of the request
        Tensor plain = Sampling.runToEnd(req, false).samples();
        assertArrayEquals(plain.data(), o.fp().samples().data());
        // current column = sampling with the calibrated current config attached (independent re-run)
        assertNotNull(o.currentConfig());
        QuantizedModel q = QuantConfigs.attach(o.currentConfig(), model, true);
        Tensor again;
        try {
            again = Sampling.runToEnd(req, false).samples();
        } finally {
            q.detach();
        }
        assertArrayEquals(again.data(), o.current().samples().data());
        assertFalse(java.util.Arrays.equals(o.fp().samples().data(), o.current().samples().data()), "W4A8 changes the samples");

        // heatmap of the last frame: pixel (1, 1) of image 0 is |current - FP| scaled by the frame's max
        GenerationOutcome.Heatmap h = o.currentHeatmap();
        assertEquals(3, h.frames());
        float[] a = o.current().frameTensor(2, true).data(), b = o.fp().frameTensor(2, true).data();
        double max = 0;
        for (int i = 0; i < a.length; i++) max = Math.max(max, Math.abs(clamp(a[i]) - clamp(b[i])));
        assertEquals(max, h.max(2, true), 1e-6);
        double v = Math.abs(clamp(a[0]) - clamp(b[0]));   // image 0, row 0, column 0 -> grid pixel (1, 1)
        assertEquals(Heatmaps.rgb(v / max), h.grid(2, true).getRGB(1, 1) & 0xFFFFFF);

        // metrics: FP row first; PSNR = 10 log10(4 / MSE) of the clamped final samples, averaged over images
        assertEquals(List.of("FP32", quant.baselineTarget().label(), "Current config"), o.metrics().stream().map(GenerationOutcome.MetricsRow::column).toList());
        GenerationOutcome.MetricsRow cur = o.metrics().get(2);
        float[] s = o.current().samples().data(), f = o.fp().samples().data();
        int per = s.length / 2;
        double psnr = 0;
        for (int img = 0; img < 2; img++) {
            double mse = 0;
            for (int i = img * per; i < (img + 1) * per; i++) mse += Math.pow(clamp(s[i]) - clamp(f[i]), 2);
            psnr += 10 * Math.log10(4 / (mse / per));
        }
        assertEquals(psnr / 2, cur.psnr(), 1e-6);   // the engine sums float differences
        assertTrue(cur.ssim() > -1 && cur.ssim() < 1, "SSIM " + cur.ssim());
        assertEquals(fm.fid(fm.classifier().features(io.diffquant.engine.metrics.SampleComparison.clampUnit(o.current().samples()))), cur.fid(), 1e-9);
        assertTrue(cur.avgWeightBits() > 4 && cur.avgWeightBits() < 5, "W4 per channel: " + cur.avgWeightBits());
        assertEquals(32, o.metrics().getFirst().avgWeightBits());
    }

    @Test void calibratedConfigsAreReusedAndFpColumnsAreNotResampled() throws Exception {
        // the table stays FP32: the current column quantizes nothing and is the FP run itself
        SampleRequest req = gen.buildRequest();
        GenerationRun run = new GenerationRun(model, req, null, column(quant.currentTarget()), null, "jvm");
        GenerationOutcome o = run.run(() -> false, x -> { }, (f, m) -> { });
        assertSame(o.fp().samples(), o.current().samples());
        assertNull(o.currentConfig());
        assertTrue(o.notes().stream().anyMatch(n -> n.contains("quantizes nothing")), o.notes().toString());
        assertTrue(o.notes().stream().anyMatch(n -> n.contains("FID-FMNIST")), o.notes().toString());
        assertTrue(Double.isInfinite(o.metrics().get(1).psnr()), "identical images: infinite PSNR");

        // calibrated once, then taken from the cache: the second run does not calibrate
        quant.applyPreset(new MethodChoice("rtn", Map.of("w_bits", 4)));
        QuantViewModel.Target t = quant.currentTarget();
        GenerationOutcome first = new GenerationRun(model, req, null, column(t), null, "jvm").run(() -> false, x -> { }, (f, m) -> { });
        quant.remember(t, first.currentConfig());
        assertSame(first.currentConfig(), quant.currentConfigProperty().get());
        List<String> messages = new ArrayList<>();
        GenerationOutcome second = new GenerationRun(model, req, null, column(quant.currentTarget()), null, "jvm")
                .run(() -> false, x -> { }, (f, m) -> messages.add(m));
        assertTrue(messages.stream().noneMatch(m -> m.startsWith("Calibrating")), messages.toString());
        assertArrayEquals(first.current().samples().data(), second.current().samples().data());
        // an edit invalidates the current config
        layers.setWeightFormat(List.of(layers.row("blocks.0.mlp.fc2")), "int8-asym");
        assertNull(quant.currentConfigProperty().get());
        assertTrue(layers.undo());
        assertSame(first.currentConfig(), quant.currentConfigProperty().get(), "undo brings the calibrated config back");
    }

    @Test void cancelWhileSamplingAQuantizedColumnDetachesAndKeepsTheFrames() {
        quant.applyPreset(new MethodChoice("rtn", Map.of("w_bits", 4)));
        SampleRequest req = gen.buildRequest();
        GenerationOutcome[] last = {null};
        GenerationRun run = new GenerationRun(model, req, null, column(quant.currentTarget()), null, "jvm");
        assertThrows(CancellationException.class, () -> run.run(
                () -> last[0] != null && last[0].current() != null && last[0].current().stepsDone() >= 1,
                x -> last[0] = x, (f, m) -> { }));
        assertFalse(TinyModels.hooked(model), "detached after the cancel");
        assertEquals(3, last[0].fp().stepsDone());
        assertEquals(1, last[0].current().stepsDone(), "the frames so far stay");
    }

    private static float clamp(float v) { return Math.max(-1f, Math.min(1f, v)); }
}
