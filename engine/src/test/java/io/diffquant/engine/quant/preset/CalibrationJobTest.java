package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CancellationException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** End-to-end calibration with presets: phases, data reuse, static ranges equal to the data's, search, cancellation. */
class CalibrationJobTest {
    @TempDir Path tmp;

    static CalibrationSettings small() {
        return new CalibrationSettings("ddim", 4, 0, "linear", 1, 4, 2, 3, TimestepSubset.uniform(2, 3, 5), 2, 4096);
    }

    @Test void rtnCalibratesStaticRangesOnTheSelectedData() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        ModelIdentity id = ModelIdentity.of(m, "dit-small");
        CalibrationJob.Request req = new CalibrationJob.Request(m, id, "rtn", Map.of("w_bits", 4, "a_bits", 8),
                List.of(LayerOverride.fullPrecision("final_layer")), small(), tmp.resolve("cache"), null);
        CalibrationJob job = CalibrationJob.start(req);
        List<CalibrationJob.Phase> phases = new ArrayList<>();
        while (job.hasNext()) {
            CalibrationJob.Phase p = job.next().phase();
            if (phases.isEmpty() || phases.getLast() != p) phases.add(p);
        }
        assertEquals(List.of(CalibrationJob.Phase.RECORD, CalibrationJob.Phase.WEIGHTS, CalibrationJob.Phase.RECONSTRUCT, CalibrationJob.Phase.ACTIVATIONS), phases);
        QuantConfig c = job.result();
        assertEquals(small(), c.calibration());
        assertEquals("rtn", c.method().preset());
        assertEquals("final_layer", c.overrides().getLast().pattern(), "user overrides come after the preset's");
        assertNull(c.params().weight("final_layer.linear"));
        // x_embedder's input is x_t itself: its static range is the min/max over the selected (t, sample) rows
        CalibrationSet data = CalibrationSet.open(tmp.resolve("cache"));
        float lo = Float.MAX_VALUE, hi = -Float.MAX_VALUE;
        int rows = 0;
        for (CalibBatch b : data.batches(small().subset(), 100)) {
            for (float v : b.x().data()) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
            rows += b.size();
        }
        assertEquals(6, rows, "2 timesteps x 3 samples");
        QuantParams expected = IntFormat.asymmetric(8).paramsForRange(new float[] {lo}, new float[] {hi});
        InputParams ip = c.params().input("x_embedder.proj");
        assertEquals(expected, ip.shared().part(0));
        // the config reproduces the job's quantized model on a fresh model
        QuantConfigCodec.write(c, tmp.resolve("rtn.json"));
        DiT fresh = QuantTestSupport.ditSmall();
        QuantizedModel q = QuantizedModel.apply(fresh, tmp.resolve("rtn.json"), false);
        Tensor x = QuantTestSupport.rand(new Random(1), 1, 1, 4, 8, 8);
        Tensor a = fresh.forward(x, new float[] {250}, new int[] {2});
        q.detach();
        QuantizedModel q2 = QuantizedModel.attach(m, job.plan(), c.params());
        Tensor b = m.forward(x, new float[] {250}, new int[] {2});
        q2.detach();
        for (int i = 0; i < a.size(); i++) assertEquals(Float.floatToRawIntBits(a.data()[i]), Float.floatToRawIntBits(b.data()[i]));
        // a second calibration reuses the recorded data (one RECORD step: "ready")
        CalibrationJob again = CalibrationJob.start(req);
        int recordSteps = 0;
        while (again.hasNext()) if (again.next().phase() == CalibrationJob.Phase.RECORD) recordSteps++;
        assertEquals(1, recordSteps);
        assertEquals(c.params(), again.result().params(), "same data, same parameters");
    }

    @Test void dynamicMethodsNeedNoData() throws Exception {
        UNet2DModel u = QuantTestSupport.unetSmall();
        QuantConfig c = CalibrationJob.run(new CalibrationJob.Request(u, ModelIdentity.of(u, "unet-small"), "fp4dit", Map.of("reconstruction", "none"),
                null, null, null, null));
        assertNull(c.calibration());
        for (var e : c.params().layers().entrySet()) assertNull(e.getValue().input(), e.getKey() + ": dynamic inputs have no parameters");
        QuantizedModel q = QuantConfigs.attach(c, u, false);
        Tensor out = u.forward(QuantTestSupport.rand(new Random(2), 1, 1, 3, 16, 16), new float[] {10}, null);
        assertTrue(out.allFinite());
        q.detach();
    }

    @Test void qDiffusionOnTheUNetCalibratesBothConcatParts() throws Exception {
        UNet2DModel u = QuantTestSupport.unetSmall();
        QuantConfig c = CalibrationJob.run(new CalibrationJob.Request(u, ModelIdentity.of(u, "unet-small"), "q-diffusion",
                Map.of("a_bits", 6, "reconstruction", "none"), null, small().withReservoir(512), tmp.resolve("ucache"), null));
        InputParams ip = c.params().input("up_blocks.0.resnets.0.conv1");
        assertEquals(2, ip.shared().size(), "two parameter sets for the split concatenation");
        assertTrue(!ip.shared().part(0).equals(ip.shared().part(1)));
        assertEquals(Granularity.CHANNEL, c.defaults().weight().granularity());
        QuantizedModel q = QuantConfigs.attach(c, u, false);
        assertTrue(u.forward(QuantTestSupport.rand(new Random(3), 1, 2, 3, 16, 16), new float[] {500, 500}, null).allFinite());
        q.detach();
    }

    @Test void qDiTSearchWritesItsGroupSizesAsOverrides() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        List<int[]> evaluated = new ArrayList<>();
        ModelObjective obj = q -> {
            int[] g = new int[10];
            int k = 0;
            for (var e : q.plan().specs().entrySet()) {
                if (e.getKey().startsWith("blocks.") && e.getValue().weight().enabled())
                    g[k++] = ((Granularity.PerGroup) e.getValue().weight().granularity()).size();
            }
            evaluated.add(g);
            double s = 0;
            for (int i = 0; i < 10; i++) s += i % 2 == 0 ? g[i] : Math.abs(g[i] - 64);   // even layers want 32, odd layers 64 (mean 48)
            return s;
        };
        CalibrationJob.Request req = new CalibrationJob.Request(m, ModelIdentity.of(m, "dit-small"), "q-dit",
                Map.of("search", true, "budget", 48.0, "generations", 4, "population", 20), null, small(), tmp.resolve("qcache"), obj);
        QuantConfig c = CalibrationJob.run(req);
        assertTrue(evaluated.size() > 20);
        List<LayerOverride> genes = c.overrides().stream().filter(o -> o.pattern().startsWith("blocks.")).toList();
        assertEquals(10, genes.size());
        for (int i = 0; i < 10; i++) {
            Granularity want = Granularity.group(i % 2 == 0 ? 32 : 64);
            assertEquals(new SpecPatch(null, null, want, null, null), genes.get(i).weight(), genes.get(i).pattern());
            assertEquals(new SpecPatch(null, null, want, null, null), genes.get(i).input(), genes.get(i).pattern());
        }
        assertEquals(true, c.method().options().getBoolean("search"));
        // the group sizes are in the config: applying it needs no search
        QuantConfigs.Bound b = QuantConfigs.bind(QuantConfigCodec.parse(QuantConfigCodec.toJson(c), "c.json"), m, false);
        assertEquals(Granularity.group(64), b.plan().spec("blocks.0.attn.proj").input().granularity());
    }

    @Test void cancellationStopsBetweenSteps() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        CalibrationJob job = CalibrationJob.start(new CalibrationJob.Request(m, ModelIdentity.of(m, "d"), "rtn", null, null, small(), tmp.resolve("x"), null));
        job.next();
        job.cancel();
        assertTrue(!job.hasNext());
        assertThrows(CancellationException.class, job::next);
        assertThrows(IllegalStateException.class, job::result);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CalibrationJob.start(
                new CalibrationJob.Request(m, ModelIdentity.of(m, "d"), "rtn", null, null, small(), null, null)));
        assertTrue(e.getMessage().contains("cache directory"), e.getMessage());
    }
}
