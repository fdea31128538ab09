package io.diffquant.engine.quant.export;

import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.ActivationCalibrator;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.OcpFp8;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The quantized checkpoint: exact reload, the decode-table rule, sizes, and the documented Python loader for real. */
class QuantizedCheckpointTest {
    @TempDir Path tmp;

    static SpecPatch fmt(NumberFormat f, Granularity g) { return new SpecPatch(null, f, g, null, null); }

    /** W4A8 with static, per-timestep and dynamic inputs, and one layer of every format family. */
    static QuantConfig mixed(DiT m, List<LayerOverride> extra) {
        PointSpec d = new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.group(16), RangeSpec.MINMAX),
                TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.STATIC));
        List<LayerOverride> ov = new ArrayList<>(List.of(
                new LayerOverride("blocks.0.mlp.fc1", fmt(FpFormat.of(2, 1), Granularity.group(32)), SpecPatch.KEEP),
                new LayerOverride("blocks.1.mlp.fc1", fmt(FpFormat.of(3, 0), Granularity.CHANNEL), SpecPatch.KEEP),
                new LayerOverride("blocks.0.mlp.fc2", fmt(BlockFormat.MXFP4, Granularity.block(32)), SpecPatch.KEEP),
                new LayerOverride("blocks.1.mlp.fc2", fmt(BlockFormat.NVFP4, Granularity.block(16)), SpecPatch.KEEP),
                new LayerOverride("blocks.0.attn.qkv", fmt(OcpFp8.E4M3, Granularity.CHANNEL), SpecPatch.KEEP),
                new LayerOverride("blocks.1.attn.qkv", fmt(IntFormat.symmetric(3), Granularity.TENSOR), SpecPatch.KEEP),
                new LayerOverride("blocks.0.attn.proj", fmt(IntFormat.unsigned(2), Granularity.head(4)), SpecPatch.KEEP),
                new LayerOverride("blocks.1.adaLN_modulation.1", fmt(BlockFormat.MXINT8, Granularity.block(32)), SpecPatch.KEEP),
                new LayerOverride("blocks.1.attn.proj", SpecPatch.KEEP, new SpecPatch(null, null, null, null, CalibrationMode.PER_TIMESTEP)),
                new LayerOverride("blocks.*.mlp.fc2", SpecPatch.KEEP, new SpecPatch(null, FpFormat.of(4, 3), Granularity.TOKEN, null, CalibrationMode.DYNAMIC)),
                LayerOverride.fullPrecision("final_layer.linear")));
        ov.addAll(extra);
        QuantPlan plan = QuantPlan.resolve(m, d, ov);
        CalibratedParams w = WeightCalibrator.calibrate(m, plan);
        CalibratedParams a;
        try (ActivationCalibrator ac = new ActivationCalibrator(m, plan, w, 1 << 10, 0)) {
            Random r = new Random(4);
            for (int t : new int[] {900, 100}) ac.observe(new CalibBatch(t, QuantTestSupport.rand(r, 1, 2, 4, 8, 8), new int[] {1, 2}, new int[] {0, 1}));
            a = ac.result();
        }
        return new QuantConfig(ModelIdentity.of(m, "dit-small"), null, null, d, ov, w.merge(a), null, null);
    }

    static void assertBitsEqual(Tensor a, Tensor b, String what) {
        assertArrayEquals(a.shape(), b.shape(), what);
        for (int i = 0; i < a.size(); i++) assertEquals(Float.floatToRawIntBits(a.data()[i]), Float.floatToRawIntBits(b.data()[i]), what + " element " + i);
    }

    @Test void reloadReproducesTheFakeQuantOutputsBitwise() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantConfig c = mixed(m, List.of());
        QuantizedModel q = io.diffquant.engine.quant.config.QuantConfigs.attach(c, m, false);
        Tensor x = QuantTestSupport.rand(new Random(9), 1, 2, 4, 8, 8);
        Tensor out900 = m.forward(x, new float[] {900, 900}, new int[] {5, 10});
        Tensor out100 = m.forward(x, new float[] {100, 100}, new int[] {5, 10});
        Path f = tmp.resolve("dit.safetensors");
        QuantizedCheckpoint.Summary s = QuantizedCheckpoint.write(q, c, f);
        q.detach();
        assertEquals(14, s.quantizedTensors(), "every quantized Linear/Conv2d weight (15 less final_layer.linear)");
        QuantizedCheckpoint.Loaded l = QuantizedCheckpoint.load(f);
        assertBitsEqual(out900, l.model().forward(x, new float[] {900, 900}, new int[] {5, 10}), "t=900");
        assertBitsEqual(out100, l.model().forward(x, new float[] {100, 100}, new int[] {5, 10}), "t=100");
        try (SafetensorsReader r = SafetensorsReader.open(f)) {
            assertEquals(DType.U8, r.info("blocks.0.mlp.fc1.weight:codes").dtype());
            assertEquals(DType.F32, r.info("blocks.0.mlp.fc1.bias").dtype());
            assertEquals(DType.F32, r.info("final_layer.linear.weight").dtype(), "full-precision layers keep F32 weights");
            assertArrayEquals(new long[] {256, 2}, r.info("blocks.0.mlp.fc1.weight:scales").shape(), "[rows, groups per row]");
            assertArrayEquals(new long[] {256 * 64 / 2}, r.info("blocks.0.mlp.fc1.weight:codes").shape(), "two 4-bit codes per byte");
            assertTrue(r.contains("blocks.1.attn.proj.weight:zeros"));
            assertTrue(!r.contains("blocks.0.mlp.fc1.weight:zeros"), "FP formats have no zero points");
            assertTrue(r.contains("blocks.1.mlp.fc2.weight:tensor_scale"));
        }
        // the dequantized weights equal the decode-table rule of docs/export-format.md
        QuantizedModel q2 = io.diffquant.engine.quant.config.QuantConfigs.attach(c, QuantTestSupport.ditSmall(), false);
        for (String layer : q2.hookedLayers()) {
            QuantizedTensor qt = q2.weightCodes(layer);
            if (qt == null) continue;
            Tensor viaRule = decodeByRule(qt);
            assertBitsEqual(q2.quantizedWeight(layer), viaRule, layer + " (" + qt.format().id() + ")");
        }
        q2.detach();
    }

    /** value = float32(((lut[code] - zero) * scale * tensorScale) / div) per element, in double. */
    static Tensor decodeByRule(QuantizedTensor qt) {
        double[] lut = CodeTables.lut(qt.format());
        double div = CodeTables.div(qt.format());
        var v = qt.view();
        Tensor out = Tensor.zeros(qt.shape());
        for (int i = 0; i < qt.size(); i++) {
            int g = v.groupOf(i);
            double scale = (double) qt.params().scale(g) * qt.params().tensorScale();
            out.data()[i] = (float) (((lut[qt.codes()[i] & 0xFF] - qt.params().zeroPoint(g)) * scale) / div);
        }
        return out;
    }

    @Test void unetCheckpointsReloadToo() throws Exception {
        UNet2DModel u = QuantTestSupport.unetSmall();
        var p = io.diffquant.engine.quant.preset.Presets.byName("fp4dit");
        var plan = p.plan(u, io.diffquant.engine.quant.preset.PresetOptions.resolve(p, Map.of()));
        QuantPlan qp = QuantPlan.resolve(u, plan.defaults(), plan.overrides());
        QuantConfig c = new QuantConfig(ModelIdentity.of(u, "unet-small"), null, null, plan.defaults(), plan.overrides(), WeightCalibrator.calibrate(u, qp), null, null);
        QuantizedModel q = QuantizedModel.attach(u, qp, c.params());
        Tensor x = QuantTestSupport.rand(new Random(1), 1, 2, 3, 16, 16);
        Tensor out = u.forward(x, new float[] {40, 40}, null);
        Path f = tmp.resolve("unet.safetensors");
        QuantizedCheckpoint.write(q, c, f);
        q.detach();
        QuantizedCheckpoint.Loaded l = QuantizedCheckpoint.load(f);
        assertTrue(l.model() instanceof UNet2DModel);
        assertBitsEqual(out, l.model().forward(x, new float[] {40, 40}, null), "unet");
    }

    @Test void packedW4IsAtMostASixthOfFp32() throws Exception {
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(28, 2, 1, 256, 2, 4, 4.0, 0.1, 10, true), 3, 0.02);
        for (Granularity g : new Granularity[] {Granularity.group(128), Granularity.CHANNEL}) {
            QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), g, RangeSpec.MINMAX), TensorSpec.OFF), List.of());
            QuantizedModel q = QuantizedModel.attach(m, plan, WeightCalibrator.calibrate(m, plan));
            QuantConfig c = new QuantConfig(ModelIdentity.of(m, "r"), null, null, plan.defaults(), List.of(), q.params(), null, null);
            Path f = tmp.resolve("w4-" + g.id() + ".safetensors");
            QuantizedCheckpoint.Summary s = QuantizedCheckpoint.write(q, c, f);
            q.detach();
            assertTrue(s.weightRatio() <= 1.0 / 6, g.id() + ": " + s);
            assertTrue((double) (s.quantizedBytes() + s.lutBytes()) / s.quantizedFp32Bytes() <= 1.0 / 6, g.id() + " with tables: " + s);
            double expectedBits = g.equals(Granularity.CHANNEL) ? 0 : 4 + 40.0 / 128;
            if (expectedBits > 0) {
                // layers of 256 input channels: exactly 4 + (32 + 8) / 128 bits, except the first conv (4 columns, 1 group per row) and t_embedder.mlp.0 (256 wide)
                assertTrue(s.weightRatio() < (expectedBits + 0.05) / 32, s.toString());
            }
        }
    }

    @Test void theDocumentedPythonLoaderDecodesEveryWeightExactly() throws Exception {
        Path py = Path.of("/usr/bin/python3");
        Assumptions.assumeTrue(Files.isExecutable(py), "skipped: /usr/bin/python3 is not installed");
        Process check = new ProcessBuilder(py.toString(), "-c", "import numpy").redirectErrorStream(true).start();
        Assumptions.assumeTrue(check.waitFor(60, TimeUnit.SECONDS) && check.exitValue() == 0, "skipped: numpy is not available to /usr/bin/python3");
        Path root = Path.of(System.getProperty("diffquant.root", ".."));
        String doc = Files.readString(root.resolve("docs/export-format.md"));
        Matcher mt = Pattern.compile("```python\\n(.*?)```", Pattern.DOTALL).matcher(doc);
        assertTrue(mt.find(), "docs/export-format.md has a python block");
        String loader = mt.group(1);
        assertTrue(Files.readString(root.resolve("tools/quant/load_quantized.py")).contains(loader), "tools/quant/load_quantized.py carries the documented loader");
        assertTrue(loader.strip().lines().count() <= 14, "about ten lines: " + loader.strip().lines().count());

        DiT m = QuantTestSupport.ditSmall();
        QuantConfig c = mixed(m, List.of());
        QuantizedModel q = io.diffquant.engine.quant.config.QuantConfigs.attach(c, m, false);
        Path ckpt = tmp.resolve("model.safetensors"), expected = tmp.resolve("expected.safetensors");
        QuantizedCheckpoint.write(q, c, ckpt);
        SafetensorsWriter w = new SafetensorsWriter();
        List<String> quantized = new ArrayList<>();
        for (var e : m.stateDict().entrySet()) {
            String name = e.getKey();
            Tensor qw = name.endsWith(".weight") ? q.quantizedWeight(name.substring(0, name.length() - 7)) : null;
            if (qw != null) quantized.add(name);
            w.add(name, qw != null ? qw : e.getValue());
        }
        w.write(expected);
        q.detach();
        String script = loader + "\n"
                + "import sys\n"
                + "sd, meta = load_diffquant(sys.argv[1])\n"
                + "ref, _ = load_diffquant(sys.argv[2])\n"
                + "assert sorted(sd) == sorted(ref), (sorted(set(sd) ^ set(ref)))\n"
                + "bad = [k for k in ref if sd[k].dtype != np.float32 or sd[k].shape != ref[k].shape or not np.array_equal(sd[k], ref[k])]\n"
                + "assert not bad, bad\n"
                + "assert json.loads(meta['quant_config'])['schema'] == 'diffquant-quant-config'\n"
                + "print('OK', len(ref), len(json.loads(meta['quantized'])))\n";
        Path sp = tmp.resolve("check.py");
        Files.writeString(sp, script);
        Process p = new ProcessBuilder(py.toString(), sp.toString(), ckpt.toString(), expected.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "python timed out");
        assertEquals(0, p.exitValue(), "python loader failed:\n" + out);
        assertEquals("OK " + m.stateDict().size() + " " + quantized.size(), out.strip());
        assertEquals(14, quantized.size());
    }

    @Test void readConfigOfACheckpointWithoutItsConfigOrIndexNamesTheFileAndTheKeys(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("stripped.safetensors");
        new SafetensorsWriter().metadata(QuantizedCheckpoint.META_FORMAT, QuantizedCheckpoint.FORMAT)
                .metadata(QuantizedCheckpoint.META_VERSION, QuantizedCheckpoint.VERSION).add("x", Tensor.zeros(2)).write(f);
        Exception e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, () -> QuantizedCheckpoint.readConfig(f));
        assertTrue(e.getMessage().contains("stripped.safetensors") && e.getMessage().contains("quant_config")
                && e.getMessage().contains("quantized"), e.getMessage());
    }

    /**
     * tfmq-cache: the cached temporal features travel in the checkpoint and are attached on load, so the reload
     * reproduces the fake-quant output (cache lookups included) bitwise; without the cache the output differs, which
     * shows that the cache is in use. A config text that points at embedded tensors cannot be parsed on its own.
     */
    @Test void tfmqCacheCheckpointCarriesTheCachedFeatures() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        io.diffquant.engine.quant.calib.CalibrationSettings cs = new io.diffquant.engine.quant.calib.CalibrationSettings("ddim", 2, 0, "linear", 1, 2, 2, 3,
                io.diffquant.engine.quant.calib.TimestepSubset.uniform(2, 2, 5), 4, 4096);
        QuantConfig c = io.diffquant.engine.quant.preset.CalibrationJob.run(new io.diffquant.engine.quant.preset.CalibrationJob.Request(m,
                ModelIdentity.of(m, "dit-small"), "tfmq-cache", Map.of("recon_iters", 2, "recon_eval_rows", 0), List.of(), cs, tmp.resolve("calib"), null));
        float t = c.temporal().timesteps()[0];
        Tensor x = QuantTestSupport.rand(new Random(3), 1, 2, 4, 8, 8);
        QuantizedModel q = io.diffquant.engine.quant.config.QuantConfigs.attach(c, m, false);
        Tensor fq = m.forward(x, new float[] {t, t}, new int[] {3, 10});
        Path f = tmp.resolve("cache.safetensors");
        QuantizedCheckpoint.Summary s = QuantizedCheckpoint.write(q, c, f);
        q.detach();
        assertEquals(c.temporal().cached().bytes(), s.temporalBytes());
        QuantizedCheckpoint.Loaded l = QuantizedCheckpoint.load(f);
        assertEquals(c.temporal().cached(), l.config().temporal().cached(), "the cache reads back equal");
        assertBitsEqual(fq, l.model().forward(x, new float[] {t, t}, new int[] {3, 10}), "cached-feature forward");
        assertEquals(c.temporal().cached(), QuantizedCheckpoint.readConfig(f).temporal().cached());
        // the same quantization without the cache hooks gives another output: the cache is what the reload reproduced
        QuantizedModel plain = QuantizedModel.attach(m, io.diffquant.engine.quant.config.QuantConfigs.bind(c, m, false).plan(), c.params());
        Tensor noCache = m.forward(x, new float[] {t, t}, new int[] {3, 10});
        plain.detach();
        boolean differs = false;
        for (int i = 0; i < fq.size(); i++) differs |= fq.data()[i] != noCache.data()[i];
        assertTrue(differs, "the cached features change the output");
        String text;
        try (SafetensorsReader r = SafetensorsReader.open(f)) {
            assertEquals(DType.U8, r.info(QuantizedCheckpoint.TEMPORAL_PREFIX + "blocks.0.codes").dtype());
            text = r.metadata().get(QuantizedCheckpoint.META_CONFIG);
        }
        Exception e = org.junit.jupiter.api.Assertions.assertThrows(io.diffquant.engine.io.JsonException.class,
                () -> io.diffquant.engine.quant.config.QuantConfigCodec.parse(text, "embedded.json"));
        assertTrue(e.getMessage().contains("$.temporal.cached_features.embedded") && e.getMessage().contains("QuantizedCheckpoint"), e.getMessage());
    }
}
