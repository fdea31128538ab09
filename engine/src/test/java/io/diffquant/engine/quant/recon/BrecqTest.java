package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.BlockObserver;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.preset.Reconstruction;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** BRECQ block reconstruction and AdaRound layer reconstruction through the {@link Reconstruction} interface. */
class BrecqTest {
    @TempDir Path tmp;

    /** DDIM 4 steps x 8 images: 32 rows. */
    static CalibrationSettings tiny() {
        return new CalibrationSettings("ddim", 4, 0, "linear", 1.0, 8, 8, 3, TimestepSubset.all(), 8, 4096);
    }

    record Setup(DiffusionModel model, QuantPlan plan, CalibratedParams rtn, CalibrationSet data) {
        Reconstruction.Context context(Map<String, ?> options, Preset preset) {
            return new Reconstruction.Context(model, plan, rtn, data, data.settings().subset(), data.settings().forwardBatch(),
                    PresetOptions.resolve(preset, options));
        }
    }

    Setup setup(DiffusionModel m, String name, String preset, Map<String, ?> options) throws Exception {
        Preset p = Presets.byName(preset);
        Preset.Plan pp = p.plan(m, PresetOptions.resolve(p, options));
        QuantPlan plan = QuantPlan.resolve(m, pp.defaults(), pp.overrides());
        CalibrationSet data = CalibrationSet.record(m, ModelIdentity.of(m, name), tiny(), tmp.resolve("calib-" + name));
        return new Setup(m, plan, WeightCalibrator.calibrate(m, plan), data);
    }

    static ReconRun run(Setup s, BrecqReconstruction r, ReconSettings settings) {
        ReconRun run = r.start(s.context(Map.of(), Presets.byName("q-diffusion")), settings);
        while (run.hasNext()) run.next();
        return run;
    }

    static void assertNoHooks(DiffusionModel m) {
        for (Layer l : m.layers().all()) assertTrue(l.hooks().isEmpty(), l.name() + " still has hooks");
    }

    @Test void blockModelsReproduceTheForwardBlockByBlock() throws Exception {
        for (DiffusionModel m : List.of(QuantTestSupport.ditSmall(), QuantTestSupport.unetSmall())) {
            BlockModel bm = BlockModel.of(m);
            List<String> names = bm.blocks();
            assertTrue(names.size() >= 2, m.architecture());
            Random r = new Random(7);
            Tensor x = QuantTestSupport.rand(r, 1, 2, m.inChannels(), m instanceof DiT ? 8 : 16, m instanceof DiT ? 8 : 16);
            float[] t = {900, 20};
            int[] y = m instanceof DiT ? new int[] {3, 10} : null;
            List<String> seen = new ArrayList<>();
            List<Tensor[]> ins = new ArrayList<>();
            List<Tensor> outs = new ArrayList<>();
            bm.forward(x, t, y, new BlockObserver() {
                @Override public void input(String block, Tensor[] in, ForwardContext ctx) {
                    seen.add(block);
                    Tensor[] c = new Tensor[in.length];
                    for (int i = 0; i < in.length; i++) c[i] = in[i].copy();
                    ins.add(c);
                }
                @Override public void output(String block, Tensor out, ForwardContext ctx) { outs.add(out.copy()); }
            });
            assertEquals(names, seen, "observer sees every block in execution order");
            for (int i = 0; i < names.size(); i++) {
                Tensor again = bm.runBlock(names.get(i), ins.get(i), new ForwardContext(t, y));
                assertArrayEquals(outs.get(i).data(), again.data(), m.architecture() + " " + names.get(i) + " run alone");
            }
            // the observed forward is the model's forward
            float[] plain = m.forward(x, t, y).data();
            float[] observed = new float[0];
            if (m instanceof UNet2DModel u) observed = u.forward(x, t, y, new BlockObserver() { }).data();
            if (m instanceof UNet2DModel) assertArrayEquals(plain, observed);
            for (String b : names) assertTrue(m.layers().all().stream().anyMatch(l -> b.equals(l.tags().get("block"))), b + " is a block tag");
        }
        assertThrows(IllegalArgumentException.class, () -> BlockModel.of(QuantTestSupport.ditSmall()).runBlock("blocks.9", new Tensor[2], null));
    }

    @Test void brecqLowersTheBlockLossBelowRoundToNearestOnDiT() throws Exception {
        Setup s = setup(QuantTestSupport.ditSmall(), "dit-small", "q-diffusion", Map.of());
        ReconRun run = run(s, BrecqReconstruction.BRECQ, ReconSettings.defaults().withIterations(300).withBatchSize(8).withEvalRows(32));
        List<String> units = run.units().stream().map(ReconRun.Unit::name).toList();
        assertTrue(units.contains("blocks.0") && units.contains("blocks.1"), units.toString());
        assertTrue(units.contains("x_embedder.proj") && units.contains("final_layer.linear"), "layers outside blocks are units: " + units);
        for (ReconRun.UnitReport r : run.reports()) {
            if (!r.block()) continue;
            assertEquals(List.of(r.unit() + ".attn.qkv", r.unit() + ".attn.proj", r.unit() + ".mlp.fc1", r.unit() + ".mlp.fc2",
                    r.unit() + ".adaLN_modulation.1"), r.layers());
            assertTrue(r.reconMse() < r.rtnMse(), r.unit() + ": block MSE " + r.reconMse() + " must be below round-to-nearest " + r.rtnMse());
        }
        CalibratedParams out = run.result();
        for (String l : List.of("blocks.0.attn.qkv", "blocks.1.mlp.fc2", "x_embedder.proj")) {
            WeightParams w = out.weight(l);
            assertTrue(w.hasCodes(), l + " has learned codes");
            assertEquals(s.rtn().weight(l).params(), w.params(), l + ": same ranges as round-to-nearest");
        }
        // the learned codes apply through the quantized model
        QuantizedModel q = QuantizedModel.attach(s.model(), s.plan().weightsOnly(), out);
        assertTrue(s.model().forward(QuantTestSupport.rand(new Random(1), 1, 1, 4, 8, 8), new float[] {500}, new int[] {1}).allFinite());
        q.detach();
        assertNoHooks(s.model());
    }

    @Test void brecqLowersTheBlockLossOnAUNetResnetBlock() throws Exception {
        Setup s = setup(QuantTestSupport.unetSmall(), "unet-small", "q-diffusion", Map.of());
        ReconRun run = run(s, BrecqReconstruction.BRECQ, ReconSettings.defaults().withIterations(300).withBatchSize(8).withEvalRows(32)
                .withUnits(List.of("down_blocks.0.resnets.0", "up_blocks.0.resnets.0", "mid_block.attentions.*", "conv_in")));
        assertEquals(List.of("conv_in", "down_blocks.0.resnets.0", "mid_block.attentions.0", "up_blocks.0.resnets.0"),
                run.units().stream().map(ReconRun.Unit::name).toList(), "selected units in model order");
        assertTrue(run.skipped().get("down_blocks.1.resnets.0.conv1").contains("not selected"));
        assertTrue(!run.result().weight("down_blocks.1.resnets.0.conv1").hasCodes(), "unselected layers keep round-to-nearest");
        ReconRun.UnitReport res = run.reports().stream().filter(r -> r.unit().equals("down_blocks.0.resnets.0")).findFirst().orElseThrow();
        assertTrue(res.block());
        assertEquals(List.of("down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0.time_emb_proj", "down_blocks.0.resnets.0.conv2"), res.layers());
        assertTrue(res.reconMse() < res.rtnMse(), "resnet block MSE " + res.reconMse() + " must be below round-to-nearest " + res.rtnMse());
        ReconRun.UnitReport up = run.reports().stream().filter(r -> r.unit().equals("up_blocks.0.resnets.0")).findFirst().orElseThrow();
        assertTrue(up.layers().contains("up_blocks.0.resnets.0.conv_shortcut"), "split-concat input block: " + up.layers());
        assertTrue(up.reconMse() < up.rtnMse(), "up block with a concatenated input: " + up.reconMse() + " vs " + up.rtnMse());
        assertTrue(run.reports().stream().anyMatch(r -> r.unit().equals("mid_block.attentions.0") && r.block()), "attention blocks are units");
        assertNoHooks(s.model());
    }

    @Test void spilledDataGivesTheSameResultAsInMemory() throws Exception {
        Setup s = setup(QuantTestSupport.ditSmall(), "dit-small", "q-diffusion", Map.of());
        ReconSettings base = ReconSettings.defaults().withIterations(20).withBatchSize(8).withEvalRows(16);
        Path spill = Files.createDirectories(tmp.resolve("spill"));
        ReconRun mem = run(s, BrecqReconstruction.BRECQ, base.withMemory(1L << 30, spill));
        ReconRun disk = run(s, BrecqReconstruction.BRECQ, base.withMemory(0, spill));
        assertTrue(disk.reports().stream().allMatch(ReconRun.UnitReport::spilled));
        assertTrue(mem.reports().stream().noneMatch(ReconRun.UnitReport::spilled));
        assertEquals(mem.result(), disk.result(), "same codes from disk and from memory");
        for (int i = 0; i < mem.reports().size(); i++) {
            assertEquals(mem.reports().get(i).rtnMse(), disk.reports().get(i).rtnMse());
            assertEquals(mem.reports().get(i).reconMse(), disk.reports().get(i).reconMse());
        }
        try (Stream<Path> files = Files.list(spill)) {
            assertEquals(0, files.count(), "spill files are deleted");
        }
    }

    @Test void cancellationStopsBetweenStepsAndCleansUp() throws Exception {
        Setup s = setup(QuantTestSupport.ditSmall(), "dit-small", "q-diffusion", Map.of());
        Path spill = Files.createDirectories(tmp.resolve("spill"));
        ReconRun run = BrecqReconstruction.BRECQ.start(s.context(Map.of(), Presets.byName("q-diffusion")),
                ReconSettings.defaults().withIterations(50).withBatchSize(8).withMemory(0, spill));
        int steps = 0;
        while (run.hasNext() && run.phase() != ReconRun.Phase.OPTIMIZE || steps < 3) {
            run.next();
            if (run.phase() == ReconRun.Phase.OPTIMIZE) steps++;
        }
        assertNotNull(run.progress());
        try (Stream<Path> files = Files.list(spill)) {
            assertEquals(1, files.count(), "a unit's data is spilled while it runs");
        }
        run.cancel();
        assertFalse(run.hasNext());
        assertThrows(CancellationException.class, run::next);
        assertThrows(CancellationException.class, run::result);
        try (Stream<Path> files = Files.list(spill)) {
            assertEquals(0, files.count(), "cancel deletes the spill file");
        }
        assertNoHooks(s.model());
    }
}
