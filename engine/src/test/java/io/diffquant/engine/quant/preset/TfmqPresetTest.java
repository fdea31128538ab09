package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.temporal.TemporalErrors;
import io.diffquant.engine.temporal.TemporalFeatures;
import io.diffquant.engine.temporal.TemporalInfoBlock;
import io.diffquant.engine.temporal.TemporalReconstruction;
import io.diffquant.engine.temporal.TfmqStage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tfmq presets: specs per switch and base weights, and end-to-end calibration with every switch on and off. */
class TfmqPresetTest {
    @TempDir Path tmp;

    static TensorSpec in(QuantPlan p, String l) { return p.spec(l).input(); }
    static TensorSpec w(QuantPlan p, String l) { return p.spec(l).weight(); }

    @Test void specsFollowTheSwitchesAndTheBaseWeights() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        QuantPlan p = PresetsTest.plan(m, "tfmq", Map.of());
        TensorSpec perT = TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.EMA, CalibrationMode.PER_TIMESTEP);
        TensorSpec stat = TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC);
        for (QuantPoint q : p.points()) {
            assertEquals(tib.contains(q.name()) ? perT : stat, in(p, q.name()), q.name());
            if (q.hasWeight()) assertEquals(q.name().equals("x_embedder.proj") || q.name().equals("final_layer.linear") ? 8 : 4,
                    w(p, q.name()).format().codeBits(), q.name());
        }
        assertEquals(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX), w(p, "blocks.0.adaLN_modulation.1"));

        QuantPlan noFsc = PresetsTest.plan(m, "tfmq", Map.of("fsc", false));
        for (QuantPoint q : noFsc.points()) assertEquals(stat, in(noFsc, q.name()), q.name());
        QuantPlan all = PresetsTest.plan(m, "tfmq", Map.of("fsc_scope", "all"));
        for (QuantPoint q : all.points()) assertEquals(CalibrationMode.PER_TIMESTEP, in(all, q.name()).mode(), q.name());

        // weights of FP4DiT: E2M1 per group, E3M0 fc1, embedders and final layer in full precision (weights and inputs)
        QuantPlan fp = PresetsTest.plan(m, "tfmq-ds", Map.of("weights", "fp4dit", "w_format", "fp"));
        assertEquals(FpFormat.of(2, 1), w(fp, "blocks.0.attn.qkv").format());
        assertEquals(Granularity.group(128), w(fp, "blocks.0.attn.qkv").granularity());
        assertEquals(FpFormat.of(3, 0), w(fp, "blocks.0.mlp.fc1").format());
        assertFalse(w(fp, "t_embedder.mlp.0").enabled());
        assertFalse(in(fp, "t_embedder.mlp.0").enabled(), "FP exceptions keep their inputs in FP too");
        assertFalse(w(fp, "final_layer.adaLN_modulation.1").enabled());
        assertEquals(perT, in(fp, "blocks.1.adaLN_modulation.1"), "activations stay TFMQ's (static / per timestep), not dynamic per token");
        // weights of Q-DiT: per-group 128 in the blocks, embedders in FP
        QuantPlan qd = PresetsTest.plan(m, "tfmq", Map.of("weights", "q-dit"));
        assertEquals(Granularity.group(128), w(qd, "blocks.0.mlp.fc2").granularity());
        assertFalse(w(qd, "x_embedder.proj").enabled());
        // FP activations at 6 bits
        QuantPlan a6 = PresetsTest.plan(m, "tfmq", Map.of("a_bits", 6, "a_format", "fp"));
        assertEquals(FpFormat.of(2, 3), in(a6, "blocks.0.adaLN_modulation.1").format());

        // the UNet: time MLP and every time_emb_proj per timestep
        DiffusionModel u = QuantTestSupport.unetSmall();
        QuantPlan up = PresetsTest.plan(u, "tfmq", Map.of());
        assertEquals(perT, in(up, "time_embedding.linear_2"));
        assertEquals(perT, in(up, "mid_block.resnets.0.time_emb_proj"));
        assertEquals(stat, in(up, "mid_block.resnets.0.conv1"));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PresetsTest.plan(m, "tfmq-ds", Map.of("cache", false)));
        assertTrue(e.getMessage().contains("'selection'") && e.getMessage().contains("'cache' = true"), e.getMessage());
    }

    /** A malformed tiar_mode is refused with the option's name and the valid values; each valid one maps to its schedule. */
    @Test void tiarModeIsValidated() {
        Preset tp = Presets.byName("tfmq");
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> PresetOptions.resolve(tp, Map.of("tiar_mode", "stagewise")));
        assertTrue(e.getMessage().contains("tiar_mode") && e.getMessage().contains("blockwise") && e.getMessage().contains("joint"), e.getMessage());
        var m = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> io.diffquant.engine.temporal.Tiar.Mode.of("Blockwise"));
        assertEquals("option 'tiar_mode': unknown value 'Blockwise' (expected auto, joint or blockwise)", m.getMessage());
        assertEquals("blockwise", PresetOptions.resolve(tp, Map.of()).getString("tiar_mode"), "the default");
        for (var mode : io.diffquant.engine.temporal.Tiar.Mode.values())
            assertEquals(mode, io.diffquant.engine.temporal.Tiar.Mode.of(PresetOptions.resolve(tp, Map.of("tiar_mode", mode.id())).getString("tiar_mode")));
    }

    @Test void switchesSelectTheStages() {
        for (String name : List.of("tfmq", "tfmq-cache", "tfmq-ds")) assertTrue(Presets.names().contains(name), name);
        Preset t = Presets.byName("tfmq"), c = Presets.byName("tfmq-cache"), ds = Presets.byName("tfmq-ds");
        assertEquals("tiar+brecq", t.reconstruction(PresetOptions.resolve(t, Map.of())).name());
        assertEquals("brecq", c.reconstruction(PresetOptions.resolve(c, Map.of())).name());
        assertEquals("tiar+none", ds.reconstruction(PresetOptions.resolve(ds, Map.of("reconstruction", "none"))).name());
        assertTrue(((TemporalReconstruction) t.reconstruction(PresetOptions.resolve(t, Map.of()))).tiar());
        TfmqStage.Settings st = ((TfmqStage) ds.postCalibration(null, PresetOptions.resolve(ds, Map.of("cache_granularity", "chunk")))).settings();
        assertTrue(st.tiar() && st.fsc() && st.cache() && st.selection());
        assertEquals("chunk", st.cacheGranularity().id());
        TfmqStage.Settings sc = ((TfmqStage) c.postCalibration(null, PresetOptions.resolve(c, Map.of()))).settings();
        assertTrue(!sc.tiar() && !sc.fsc() && sc.cache() && !sc.selection());
        assertEquals("chunk", sc.cacheGranularity().id(), "default: one parameter set per shift / scale / gate vector");
        TfmqStage.Settings sv = ((TfmqStage) c.postCalibration(null, PresetOptions.resolve(c, Map.of("cache_granularity", "tensor")))).settings();
        assertEquals("tensor", sv.cacheGranularity().id());
        assertThrows(IllegalArgumentException.class, () -> c.postCalibration(null, PresetOptions.resolve(c, Map.of("selection", true, "cache", false))));
        assertThrows(IllegalArgumentException.class, () -> PresetOptions.resolve(t, Map.of("fsc_scope", "some")));
    }

    static CalibrationSettings small() {
        return new CalibrationSettings("ddim", 4, 0, "linear", 1, 4, 2, 3, TimestepSubset.uniform(2, 3, 5), 4, 4096);
    }

    static Map<String, Object> fast(Map<String, Object> extra) {
        Map<String, Object> o = new HashMap<>(Map.of("recon_iters", 2, "recon_eval_rows", 0, "tiar_iters", 6, "tiar_batch", 16));
        o.putAll(extra);
        return o;
    }

    /** Runs a job; returns the config and the phases seen. */
    QuantConfig run(DiffusionModel m, String preset, Map<String, Object> opts, List<CalibrationJob.Phase> phases, String dir) throws Exception {
        CalibrationJob job = CalibrationJob.start(new CalibrationJob.Request(m, ModelIdentity.of(m, "small"), preset, opts, List.of(), small(),
                tmp.resolve(dir), null));
        while (job.hasNext()) {
            CalibrationJob.Phase p = job.next().phase();
            if (phases.isEmpty() || phases.getLast() != p) phases.add(p);
        }
        for (var l : m.layers().all()) assertTrue(l.hooks().isEmpty(), "no hook left on " + l.name());
        return job.result();
    }

    @Test void everySwitchOnAndOffCalibratesEndToEnd() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        int[] rec = {999, 750, 500, 250};  // ddim4 timesteps are 751, 501, 251, 1
        List<Map<String, Object>> variants = List.of(
                Map.of(), Map.of("tiar", false, "fsc_scope", "all"), Map.of("fsc", false, "cache", true, "selection", true, "cache_granularity", "chunk"));
        int k = 0;
        QuantConfig dflt = null;
        for (Map<String, Object> v : variants) {
            List<CalibrationJob.Phase> phases = new ArrayList<>();
            QuantConfig c = run(m, "tfmq", fast(v), phases, "cache");
            if (v.isEmpty()) dflt = c;
            TemporalSection s = c.temporal();
            assertNotNull(s, v.toString());
            boolean tiar = !v.containsKey("tiar"), fsc = !v.containsKey("fsc"), cache = v.containsKey("cache"), sel = v.containsKey("selection");
            assertEquals(tiar, s.tiar(), v.toString());
            assertEquals(fsc, s.fsc(), v.toString());
            assertEquals(cache, s.cache(), v.toString());
            assertEquals(sel, s.selection(), v.toString());
            assertEquals(cache, s.cached() != null, v.toString());
            assertEquals(sel, s.selectionMap() != null, v.toString());
            assertEquals(CalibrationJob.Phase.TEMPORAL, phases.getLast(), v.toString());
            assertEquals(4, s.timesteps().length, "every sampling timestep");
            // learned codes on the TIB (TIAR's, or BRECQ's when TIAR is off); FSC: per-timestep parameters for every sampling timestep
            assertNotNull(c.params().weight("blocks.0.adaLN_modulation.1").codes(), v.toString());
            assertEquals(fsc, c.params().input("t_embedder.mlp.0").isPerTimestep(), v.toString());
            if (fsc) assertEquals(4, c.params().input("blocks.1.adaLN_modulation.1").perTimestep().size());
            if (fsc && "all".equals(v.get("fsc_scope"))) assertEquals(4, c.params().input("blocks.0.mlp.fc2").perTimestep().size());
            else assertFalse(c.params().input("blocks.0.mlp.fc2").isPerTimestep());
            // the config applies to a fresh model, through a file
            Path f = tmp.resolve("c" + (k++) + ".json");
            QuantConfigCodec.write(c, f);
            DiT fresh = QuantTestSupport.ditSmall();
            QuantizedModel q = QuantConfigs.attach(QuantConfigCodec.read(f), fresh, false);
            float[] ts = s.timesteps();
            TemporalFeatures fp = TemporalFeatures.compute(QuantTestSupport.ditSmall(), ts, null);
            TemporalErrors err = TemporalErrors.compare(fp, TemporalFeatures.computeQuantized(q, ts, null));
            double e = err.mean(TemporalErrors.Metric.REL_L2);
            assertTrue(e > 0 && e < 1, v + ": temporal error " + e);
            fresh.forward(QuantTestSupport.rand(new java.util.Random(1), 1, 2, 4, 8, 8), new float[] {ts[0], ts[0]}, new int[] {1, 10});
            q.detach();
        }
        // TIAR's codes survive the reconstruction of the rest (the TIB is excluded from BRECQ): equal to TIAR run alone
        Map<String, Object> opts = fast(Map.of());
        Preset tp = Presets.byName("tfmq");
        PresetOptions po = PresetOptions.resolve(tp, opts);
        Preset.Plan pp = tp.plan(m, po);
        QuantPlan plan = QuantPlan.resolve(m, pp.defaults(), pp.overrides());
        io.diffquant.engine.quant.CalibratedParams alone = io.diffquant.engine.temporal.Tiar.run(m, plan,
                io.diffquant.engine.quant.calib.WeightCalibrator.calibrate(m, plan), dflt.temporal().timesteps(), null,
                io.diffquant.engine.quant.recon.ReconSettings.from(po).withLr(1e-2), 6, 16, TfmqPreset.DEFAULT_TIAR_MODE);
        for (String l : tib.linearLayers(m))
            org.junit.jupiter.api.Assertions.assertArrayEquals(alone.weight(l).codes(), dflt.params().weight(l).codes(), l);

        List<CalibrationJob.Phase> phases = new ArrayList<>();
        QuantConfig c = run(m, "tfmq-cache", fast(Map.of()), phases, "cache");
        assertNull(c.temporal().selectionMap());
        assertEquals(c.temporal().features().size() * 4, c.temporal().cachedEntries(), "every feature from the cache");
        assertTrue(c.temporal().cached().bytes() > 0);
        assertEquals(List.of(CalibrationJob.Phase.RECORD, CalibrationJob.Phase.WEIGHTS, CalibrationJob.Phase.RECONSTRUCT,
                CalibrationJob.Phase.ACTIVATIONS, CalibrationJob.Phase.TEMPORAL), phases);
        assertEquals(rec.length, c.temporal().timesteps().length);
    }

    @Test void unetDsCalibratesEndToEnd() throws Exception {
        DiffusionModel u = QuantTestSupport.unetSmall();
        QuantConfig c = run(u, "tfmq-ds", fast(Map.of()), new ArrayList<>(), "ucache");
        TemporalSection s = c.temporal();
        assertEquals(TemporalInfoBlock.of(u).features().size(), s.selectionMap().length);
        assertNull(s.labels());
        assertEquals(4, c.params().input("up_blocks.1.resnets.1.time_emb_proj").perTimestep().size());
        assertNotNull(c.params().weight("time_embedding.linear_1").codes(), "TIAR on the time MLP");
    }
}
