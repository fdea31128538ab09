package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Cache-based maintenance: per-feature parameters, memory, and inference that really skips the TIB. */
class FeatureCacheTest {
    static final float[] GRID = {999, 750, 500, 250, 1};
    static final RangeEstimator MSE = new RangeEstimator.LpSearch(2, 80, 0.01);

    @Test void everyFeatureVectorHasItsOwnSearchedParameters() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 51);
        TemporalFeatures fp = TemporalFeatures.compute(m, GRID, null);
        IntFormat a8 = IntFormat.asymmetric(8);
        FeatureCache c = FeatureCache.build(fp, a8, FeatureCache.CacheGranularity.TENSOR, MSE);
        int ny = 6;
        for (TemporalInfoBlock.Feature f : fp.tib().features()) {
            QuantizedTensor q = c.feature(f.index());
            assertArrayEquals(new int[] {GRID.length, ny, f.width()}, q.shape());
            assertEquals(Granularity.TOKEN, q.granularity());
            assertEquals(GRID.length * ny, q.params().groups(), "one parameter set per (t, y)");
            // independent check of one vector: the same MSE search on the vector alone
            float[] e = fp.get(f.index(), 2, 3);
            var r = MSE.ranges(a8, new io.diffquant.engine.quant.format.GroupView(Granularity.TENSOR,
                    io.diffquant.engine.quant.format.Layout.ACTIVATION, new int[] {1, e.length}), e);
            assertEquals(a8.paramsForRange(r.lo(), r.hi()), q.params().group(2 * ny + 3));
        }
        // memory: 8-bit codes plus a 32-bit scale and an 8-bit zero point per vector
        long elements = (long) GRID.length * ny * fp.tib().totalWidth(), groups = (long) GRID.length * ny * 3;
        assertEquals((elements * 8 + groups * 40) / 8, c.bytes());
        assertEquals(4 * elements, c.fpBytes());
        TemporalErrors err = TemporalErrors.compare(fp, c.dequantized());
        assertTrue(err.mean(TemporalErrors.Metric.REL_L2) < 1e-3, "8-bit cache error " + err.mean(TemporalErrors.Metric.REL_L2));
        float[] row = new float[fp.width(0)];
        c.decode(0, 2, 3, row, 0);
        assertArrayEquals(c.dequantized().get(0, 2, 3), row);
        // chunk granularity: one set per shift/scale/gate chunk, never worse than per vector here
        FeatureCache ch = FeatureCache.build(fp, a8, FeatureCache.CacheGranularity.CHUNK, MSE);
        assertEquals(Granularity.group(32), ch.feature(0).granularity());
        assertEquals(GRID.length * ny * 6, ch.feature(0).params().groups());
        assertTrue(TemporalErrors.compare(fp, ch.dequantized()).mean(TemporalErrors.Metric.REL_L2) < err.mean(TemporalErrors.Metric.REL_L2));
    }

    /** Replaces (after computing) the output rows of the feature layers with the cached feature: the reference path. */
    static final class Inject implements LayerHook {
        final FeatureCache cache;
        final int feature;
        final boolean[] useAt;

        Inject(FeatureCache cache, int feature, boolean[] useAt) { this.cache = cache; this.feature = feature; this.useAt = useAt; }

        @Override public Tensor output(Layer l, Tensor y, ForwardContext ctx) {
            Tensor out = y.copy();
            int w = y.dim(1);
            for (int r = 0; r < ctx.batch(); r++) {
                int ti = cache.indexOfT(ctx.t()[r]);
                if (useAt != null && !useAt[ti]) continue;
                cache.decode(feature, ti, cache.indexOfY(ctx.y() == null ? 0 : ctx.y()[r]), out.data(), r * w);
            }
            return out;
        }
    }

    /** Counts calls that reach the layer's own computation (a later hook's replace() runs only if no earlier one replaced). */
    static final class Count implements LayerHook {
        int computed;
        @Override public Tensor replace(Layer l, Tensor x, ForwardContext ctx) { computed++; return null; }
    }

    static void cachePathEqualsInjectedFeatures(java.util.function.Supplier<DiffusionModel> fresh, int channels, int size, float[] t, int[] y) {
        DiffusionModel ref = fresh.get();
        TemporalInfoBlock tib = TemporalInfoBlock.of(ref);
        FeatureCache cache = FeatureCache.build(TemporalFeatures.compute(ref, GRID, null), IntFormat.asymmetric(8),
                FeatureCache.CacheGranularity.TENSOR, MSE);
        Tensor x = TemporalTestSupport.randn(9, t.length, channels, size, size);
        for (TemporalInfoBlock.Feature f : tib.features()) ref.layers().get(f.layer()).addHook(new Inject(cache, f.index(), null));
        Tensor want = ref.forward(x, t, y);

        DiffusionModel m = fresh.get();
        // poison every TIB parameter: if any TIB layer computed, the output would be NaN
        for (String name : tib.layers()) {
            Layer l = m.layers().get(name);
            for (Map.Entry<String, Tensor> p : l.params().entrySet()) {
                float[] nan = new float[p.getValue().size()];
                Arrays.fill(nan, Float.NaN);
                l.setParam(p.getKey(), Tensor.of(nan, p.getValue().shape()));
            }
        }
        TemporalCacheHooks hooks = TemporalCacheHooks.attach(m, cache, null);
        List<Count> counts = new ArrayList<>();
        for (String name : tib.layers()) {
            Count c = new Count();
            m.layers().get(name).addHook(c);
            counts.add(c);
        }
        Tensor got = m.forward(x, t, y);
        assertArrayEquals(want.data(), got.data(), 0f, "cached path = model with the cached features injected");
        for (int i = 0; i < counts.size(); i++) assertEquals(0, counts.get(i).computed, tib.layers().get(i) + " was executed");
        assertEquals(tib.features().size(), hooks.replacedCalls());
        assertEquals(tib.layers().size() - tib.features().size(), hooks.skippedCalls());
        assertEquals((long) t.length * tib.features().size(), hooks.cachedRows());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.forward(x, fill(t.length, 600), y));
        assertTrue(e.getMessage().contains("not cached"), e.getMessage());
        hooks.detach();
        for (String name : tib.layers()) assertEquals(1, m.layers().get(name).hooks().size(), "only the counter is left on " + name);
    }

    static float[] fill(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    @Test void ditCachePathSkipsTheTib() {
        cachePathEqualsInjectedFeatures(() -> TemporalTestSupport.dit(TemporalTestSupport.DIT, 52), 3, 8, new float[] {999, 1, 500, 500},
                new int[] {5, 0, 2, 5});
    }

    @Test void unetCachePathSkipsTheTib() {
        cachePathEqualsInjectedFeatures(() -> TemporalTestSupport.unet("", 53), 1, 8, new float[] {250, 250, 999}, null);
        cachePathEqualsInjectedFeatures(() -> TemporalTestSupport.unet(", \"num_class_embeds\": 3, \"resnet_time_scale_shift\": \"scale_shift\"", 54),
                1, 8, new float[] {1, 750}, new int[] {2, 0});
    }

    @Test void selectionMapMixesCachedAndComputedFeatures() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 55);
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        FeatureCache cache = FeatureCache.build(TemporalFeatures.compute(m, GRID, null), IntFormat.asymmetric(4), FeatureCache.CacheGranularity.TENSOR, MSE);
        boolean[][] use = new boolean[3][GRID.length];
        use[0] = new boolean[] {true, false, true, false, true};
        use[2] = new boolean[] {false, false, true, true, true};
        float[] t = {999, 750, 500, 1};
        int[] y = {1, 2, 3, 5};
        Tensor x = TemporalTestSupport.randn(10, 4, 3, 8, 8);
        List<Layer> layers = new ArrayList<>();
        List<LayerHook> inj = new ArrayList<>();
        for (TemporalInfoBlock.Feature f : tib.features()) {
            Inject h = new Inject(cache, f.index(), use[f.index()]);
            m.layers().get(f.layer()).addHook(h);
            layers.add(m.layers().get(f.layer()));
            inj.add(h);
        }
        Tensor want = m.forward(x, t, y);
        for (int i = 0; i < layers.size(); i++) layers.get(i).removeHook(inj.get(i));
        TemporalCacheHooks hooks = TemporalCacheHooks.attach(m, cache, use);
        Tensor got = m.forward(x, t, y);
        hooks.detach();
        assertArrayEquals(want.data(), got.data(), 0f);
        assertEquals(0, hooks.skippedCalls(), "some features come from the TIB, so the embedders run");
        // batches of one timestep where everything is cached skip the embedders
        boolean[][] allAt500 = new boolean[3][GRID.length];
        for (boolean[] r : allAt500) r[2] = true;
        TemporalCacheHooks h2 = TemporalCacheHooks.attach(m, cache, allAt500);
        m.forward(x, fill(4, 500), y);
        assertEquals(2 + 1, h2.skippedCalls(), "t_embedder.mlp.0/2 and y_embedder skipped");
        m.forward(x, fill(4, 750), y);
        assertEquals(3, h2.skippedCalls());
        h2.detach();
    }
}
