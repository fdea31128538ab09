package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** TIB discovery for DiT and UNet, the feature table against a real forward pass, errors of a quantized TIB. */
class TemporalFeaturesTest {

    private static List<String> names(TemporalInfoBlock tib) {
        List<String> n = new ArrayList<>();
        for (TemporalInfoBlock.Feature f : tib.features()) n.add(f.name() + "<-" + f.layer() + ":" + f.width() + (f.dependsOnY() ? "y" : "") + "/" + f.chunks());
        return n;
    }

    @Test void ditTibListsEmbeddersAndEveryModulation() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 1);
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        assertEquals(List.of("t_embedder.mlp.0", "t_embedder.mlp.2", "y_embedder.embedding_table", "blocks.0.adaLN_modulation.1",
                "blocks.1.adaLN_modulation.1", "final_layer.adaLN_modulation.1"), tib.layers());
        assertEquals(List.of("blocks.0<-blocks.0.adaLN_modulation.1:192y/6", "blocks.1<-blocks.1.adaLN_modulation.1:192y/6",
                "final_layer<-final_layer.adaLN_modulation.1:64y/2"), names(tib));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, tib.labels());        // 5 classes + the null class
        assertEquals(List.of("t_embedder.mlp.0", "t_embedder.mlp.2", "blocks.0.adaLN_modulation.1", "blocks.1.adaLN_modulation.1",
                "final_layer.adaLN_modulation.1"), tib.linearLayers(m));
        assertTrue(tib.contains("y_embedder.embedding_table"));
        assertFalse(tib.contains("blocks.0.attn.qkv"));
        assertEquals(192 + 192 + 64, tib.totalWidth());

        TemporalInfoBlock u = TemporalInfoBlock.of(TemporalTestSupport.dit(TemporalTestSupport.DIT_UNCOND, 2));
        assertEquals(List.of("t_embedder.mlp.0", "t_embedder.mlp.2", "blocks.0.adaLN_modulation.1", "blocks.1.adaLN_modulation.1",
                "blocks.2.adaLN_modulation.1", "final_layer.adaLN_modulation.1"), u.layers());
        assertEquals(List.of("blocks.0<-blocks.0.adaLN_modulation.1:96/6", "blocks.1<-blocks.1.adaLN_modulation.1:96/6",
                "blocks.2<-blocks.2.adaLN_modulation.1:96/6", "final_layer<-final_layer.adaLN_modulation.1:32/2"), names(u));
        assertNull(u.labels());
    }

    @Test void unetTibListsTimeMlpClassEmbeddingAndEveryTimeProjection() {
        TemporalInfoBlock tib = TemporalInfoBlock.of(TemporalTestSupport.unet("", 3));
        List<String> resnets = List.of("down_blocks.0.resnets.0", "down_blocks.1.resnets.0", "mid_block.resnets.0", "mid_block.resnets.1",
                "up_blocks.0.resnets.0", "up_blocks.0.resnets.1", "up_blocks.1.resnets.0", "up_blocks.1.resnets.1");
        List<String> layers = new ArrayList<>(List.of("time_embedding.linear_1", "time_embedding.linear_2"));
        for (String r : resnets) layers.add(r + ".time_emb_proj");
        assertEquals(layers, tib.layers());
        int[] widths = {8, 16, 16, 16, 16, 16, 8, 8};
        List<String> expect = new ArrayList<>();
        for (int i = 0; i < resnets.size(); i++) expect.add(resnets.get(i) + "<-" + resnets.get(i) + ".time_emb_proj:" + widths[i] + "/1");
        assertEquals(expect, names(tib));
        assertNull(tib.labels());

        TemporalInfoBlock c = TemporalInfoBlock.of(TemporalTestSupport.unet(", \"num_class_embeds\": 3, \"resnet_time_scale_shift\": \"scale_shift\"", 4));
        List<String> cl = new ArrayList<>(List.of("time_embedding.linear_1", "time_embedding.linear_2", "class_embedding"));
        for (String r : resnets) cl.add(r + ".time_emb_proj");
        assertEquals(cl, c.layers());
        assertEquals("down_blocks.0.resnets.0<-down_blocks.0.resnets.0.time_emb_proj:16y/2", names(c).get(0));
        assertArrayEquals(new int[] {0, 1, 2}, c.labels());

        TemporalInfoBlock ts = TemporalInfoBlock.of(TemporalTestSupport.unet(", \"class_embed_type\": \"timestep\", \"num_class_embeds\": 4", 5));
        assertEquals(List.of("time_embedding.linear_1", "time_embedding.linear_2", "class_embedding.linear_1", "class_embedding.linear_2"),
                ts.layers().subList(0, 4));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TemporalInfoBlock.of(TemporalTestSupport.unet(", \"class_embed_type\": \"identity\"", 6)));
        assertTrue(e.getMessage().contains("identity"), e.getMessage());
    }

    /** Records every output of the feature layers with the call's (t, y). */
    private static final class Observed implements LayerHook {
        final List<Tensor> outs = new ArrayList<>();
        final List<ForwardContext> ctxs = new ArrayList<>();
        @Override public Tensor output(Layer l, Tensor y, ForwardContext ctx) { outs.add(y.copy()); ctxs.add(ctx); return y; }
    }

    /** The table equals what the TIB layers emit during a real forward pass of mixed (t, y) rows. */
    private static void checkAgainstForward(DiffusionModel m, int channels, int size, float[] t, int[] y) {
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        float[] grid = {999, 751, 500, 251, 1, 0};
        TemporalFeatures table = TemporalFeatures.compute(m, grid, null);
        assertEquals(grid.length, table.timestepCount());
        List<Observed> obs = new ArrayList<>();
        for (TemporalInfoBlock.Feature f : tib.features()) {
            Observed o = new Observed();
            m.layers().get(f.layer()).addHook(o);
            obs.add(o);
        }
        try {
            m.forward(TemporalTestSupport.randn(7, t.length, channels, size, size), t, y);
        } finally {
            for (int i = 0; i < obs.size(); i++) m.layers().get(tib.features().get(i).layer()).removeHook(obs.get(i));
        }
        int checked = 0;
        for (TemporalInfoBlock.Feature f : tib.features()) {
            Observed o = obs.get(f.index());
            assertEquals(1, o.outs.size(), f.layer() + " runs once per forward");
            Tensor out = o.outs.get(0);
            for (int r = 0; r < t.length; r++) {
                float[] want = table.at(f.index(), t[r], y == null ? 0 : y[r]);
                for (int j = 0; j < f.width(); j++) {
                    assertEquals(out.data()[r * f.width() + j], want[j], 1e-6, f.layer() + " row " + r + " element " + j);
                    checked++;
                }
            }
        }
        assertEquals(t.length * tib.totalWidth(), checked);
    }

    @Test void ditFeaturesEqualTheForwardPass() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 11);
        checkAgainstForward(m, 3, 8, new float[] {999, 0, 500, 251, 1}, new int[] {0, 5, 3, 5, 1});
        checkAgainstForward(TemporalTestSupport.dit(TemporalTestSupport.DIT_UNCOND, 12), 1, 8, new float[] {751, 1, 999}, null);
    }

    @Test void unetFeaturesEqualTheForwardPass() {
        checkAgainstForward(TemporalTestSupport.unet("", 13), 1, 8, new float[] {999, 0, 500}, null);
        checkAgainstForward(TemporalTestSupport.unet(", \"num_class_embeds\": 3, \"resnet_time_scale_shift\": \"scale_shift\"", 14), 1, 8,
                new float[] {251, 999, 0, 1}, new int[] {2, 0, 1, 2});
    }

    @Test void quantizedTibGivesMeasuredErrors() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 21);
        float[] grid = {999, 500, 0};
        TemporalFeatures fp = TemporalFeatures.compute(m, grid, null);
        PointSpec w4 = new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
        QuantPlan plan = QuantPlan.resolve(m, w4, List.of());
        QuantizedModel q = QuantizedModel.attach(m, plan, WeightCalibrator.calibrate(m, plan));
        TemporalFeatures qf;
        try {
            qf = TemporalFeatures.computeQuantized(q, grid, null);
        } finally {
            q.detach();
        }
        TemporalErrors err = TemporalErrors.compare(fp, qf);
        // an independent check of one entry
        float[] e = fp.get(1, 2, 4), eq = qf.get(1, 2, 4);
        double dd = 0, ee = 0, dot = 0, qq = 0;
        for (int j = 0; j < e.length; j++) {
            double d = (double) eq[j] - e[j];
            dd += d * d;
            ee += (double) e[j] * e[j];
            qq += (double) eq[j] * eq[j];
            dot += (double) e[j] * eq[j];
        }
        assertEquals(dd / ee, err.value(TemporalErrors.Metric.REL_L2, 1, 2, 4), 1e-12);
        assertEquals(dd / e.length, err.value(TemporalErrors.Metric.MSE, 1, 2, 4), 1e-12);
        assertEquals(dot / Math.sqrt(ee * qq), err.value(TemporalErrors.Metric.COSINE, 1, 2, 4), 1e-12);
        assertTrue(err.mean(TemporalErrors.Metric.REL_L2) > 1e-4, "W4 changes the features");
        assertTrue(err.mean(TemporalErrors.Metric.REL_L2) < 1, "but keeps them close");
        // the FP model is unchanged after detaching, and identical tables have zero error
        TemporalErrors same = TemporalErrors.compare(fp, TemporalFeatures.compute(m, grid, null));
        assertEquals(0, same.mean(TemporalErrors.Metric.REL_L2));
        assertEquals(1, same.mean(TemporalErrors.Metric.COSINE), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> TemporalFeatures.compute(m, new float[] {5, 5}, null));
        assertThrows(IllegalArgumentException.class, () -> TemporalFeatures.compute(m, grid, new int[] {6}));
    }
}
