package io.diffquant.engine.model.unet;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** UNet2DModel structure (diffusers state_dict names and shapes), tags, hooks, fast/explicit paths, analytic cases. */
class UNet2DModelTest {
    static final String SMALL = """
            {"sample_size": 16, "block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8,
             "attention_head_dim": 8, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
             "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]""";

    static UNet2DModel model(String json) {
        return new UNet2DModel(UNet2DConfig.fromJson(json, "test"));
    }

    static void randomize(UNet2DModel m, long seed) {
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            Tensor t = Tensor.zeros(e.getValue().shape());
            boolean normWeight = e.getKey().contains("norm") && e.getKey().endsWith(".weight");
            for (int i = 0; i < t.size(); i++) t.data()[i] = (float) ((normWeight ? 1 : 0) + 0.15 * r.nextGaussian());
            sd.put(e.getKey(), t);
        }
        m.loadWeights(sd, "random");
    }

    static Tensor randn(long seed, int... shape) {
        Random r = new Random(seed);
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) r.nextGaussian();
        return t;
    }

    static float maxAbsDiff(Tensor a, Tensor b) {
        assertArrayEquals(a.shape(), b.shape());
        float m = 0;
        for (int i = 0; i < a.size(); i++) m = Math.max(m, Math.abs(a.data()[i] - b.data()[i]));
        return m;
    }

    // ------------------------------------------------------------------ structure

    /** Parameter count of a diffusers UNet2DModel, derived from the module definitions in unet_2d*.py / resnet.py. */
    static long diffusersParameterCount(UNet2DConfig c) {
        List<Integer> boc = c.blockOutChannels();
        int levels = boc.size(), temb = c.timeEmbedDim(), c0 = boc.get(0), lpb = c.layersPerBlock();
        int tin = c.timestepInputDim();
        long n = (long) tin * temb + temb + (long) temb * temb + temb; // time_embedding
        n += 9L * c.inChannels() * c0 + c0; // conv_in
        int out = c0;
        for (int i = 0; i < levels; i++) {
            int in = out;
            out = boc.get(i);
            for (int j = 0; j < lpb; j++) {
                n += resnet(j == 0 ? in : out, out, temb, c.scaleShift());
                if (c.downBlockTypes().get(i).equals("AttnDownBlock2D")) n += attention(out, c.headDim(out), true);
            }
            if (i < levels - 1) n += 9L * out * out + out;
        }
        int cl = boc.get(levels - 1);
        n += 2 * resnet(cl, cl, temb, c.scaleShift()) + attention(cl, c.headDim(cl), c.midAttentionGroups() != null);
        List<Integer> rev = new ArrayList<>(boc);
        java.util.Collections.reverse(rev);
        out = rev.get(0);
        for (int i = 0; i < levels; i++) {
            int prev = out;
            out = rev.get(i);
            int in = rev.get(Math.min(i + 1, levels - 1));
            for (int j = 0; j <= lpb; j++) {
                int skip = j == lpb ? in : out, rin = j == 0 ? prev : out;
                n += resnet(rin + skip, out, temb, c.scaleShift());
                if (c.upBlockTypes().get(i).equals("AttnUpBlock2D")) n += attention(out, c.headDim(out), true);
            }
            if (i < levels - 1) n += 9L * out * out + out;
        }
        n += 2L * c0 + 9L * c0 * c.outChannels() + c.outChannels(); // conv_norm_out, conv_out
        return n;
    }

    static long resnet(int in, int out, int temb, boolean ss) {
        long n = 2L * in + 9L * in * out + out + (long) temb * out * (ss ? 2 : 1) + (long) out * (ss ? 2 : 1)
                + 2L * out + 9L * out * out + out;
        if (in != out) n += (long) in * out + out;
        return n;
    }

    static long attention(int c, int headDim, boolean groupNorm) {
        int inner = (c / headDim) * headDim;
        return (groupNorm ? 2L * c : 0) + 3L * (c * inner + inner) + (long) inner * c + c;
    }

    @Test void ddpmCifar10HasTheDiffusersStateDict() {
        UNet2DConfig cfg = UNet2DConfig.fromJson(UNet2DConfigTest.resource("ddpm-cifar10-32-config.json"));
        UNet2DModel m = new UNet2DModel(cfg);
        Map<String, Tensor> sd = m.stateDict();
        assertEquals(35_746_307L, diffusersParameterCount(cfg), "google/ddpm-cifar10-32 has 35.7M parameters");
        assertEquals(35_746_307L, m.parameterCount());
        assertEquals(328, sd.size());
        Map<String, int[]> shapes = Map.ofEntries(
                Map.entry("conv_in.weight", new int[] {128, 3, 3, 3}),
                Map.entry("time_embedding.linear_1.weight", new int[] {512, 128}),
                Map.entry("time_embedding.linear_2.bias", new int[] {512}),
                Map.entry("down_blocks.0.resnets.0.norm1.weight", new int[] {128}),
                Map.entry("down_blocks.0.resnets.1.time_emb_proj.weight", new int[] {128, 512}),
                Map.entry("down_blocks.0.downsamplers.0.conv.weight", new int[] {128, 128, 3, 3}),
                Map.entry("down_blocks.1.resnets.0.conv_shortcut.weight", new int[] {256, 128, 1, 1}),
                Map.entry("down_blocks.1.attentions.1.group_norm.bias", new int[] {256}),
                Map.entry("down_blocks.1.attentions.0.to_q.weight", new int[] {256, 256}),
                Map.entry("down_blocks.1.attentions.0.to_out.0.bias", new int[] {256}),
                Map.entry("down_blocks.3.resnets.1.conv2.weight", new int[] {256, 256, 3, 3}),
                Map.entry("mid_block.resnets.1.norm2.weight", new int[] {256}),
                Map.entry("mid_block.attentions.0.to_v.bias", new int[] {256}),
                Map.entry("up_blocks.0.resnets.0.conv1.weight", new int[] {256, 512, 3, 3}),
                Map.entry("up_blocks.0.upsamplers.0.conv.weight", new int[] {256, 256, 3, 3}),
                Map.entry("up_blocks.2.attentions.2.to_k.weight", new int[] {256, 256}),
                Map.entry("up_blocks.3.resnets.0.conv1.weight", new int[] {128, 384, 3, 3}),
                Map.entry("up_blocks.3.resnets.2.conv_shortcut.weight", new int[] {128, 256, 1, 1}),
                Map.entry("conv_norm_out.weight", new int[] {128}),
                Map.entry("conv_out.weight", new int[] {3, 128, 3, 3}));
        for (var e : shapes.entrySet()) {
            assertNotNull(sd.get(e.getKey()), e.getKey());
            assertArrayEquals(e.getValue(), sd.get(e.getKey()).shape(), e.getKey());
        }
        assertFalse(sd.containsKey("down_blocks.3.downsamplers.0.conv.weight"), "the last down block does not downsample");
        assertFalse(sd.containsKey("up_blocks.3.upsamplers.0.conv.weight"), "the last up block does not upsample");
        // layers per kind
        assertEquals(60, sd.keySet().stream().filter(k -> k.contains(".attentions.")).count());
        assertEquals(12, m.layers().match("*.concat").size(), "one concat probe per up-block ResNet: 4 levels x 3");
        assertEquals(24, m.layers().match("*.attentions.*").stream().filter(l -> l.kind() == LayerKind.ACTIVATION).count(),
                "q, k, v, softmax probes for each of the 6 attention blocks (2 down, 1 mid, 3 up)");
    }

    @Test void derivedCountMatchesTheModelForOtherOptions() {
        for (String extra : new String[] {"", ", \"resnet_time_scale_shift\": \"scale_shift\"", ", \"attention_head_dim\": null",
                ", \"attention_head_dim\": 12", ", \"time_embedding_type\": \"fourier\", \"time_embedding_dim\": 40",
                ", \"add_attention\": false", ", \"layers_per_block\": 3"}) {
            UNet2DConfig c = UNet2DConfig.fromJson(SMALL + extra + "}", "t");
            long fourier = "fourier".equals(c.timeEmbeddingType()) ? c.channels(0) : 0;
            long noMidAttn = c.addAttention() ? 0 : attention(32, c.headDim(32), true);
            assertEquals(diffusersParameterCount(c) + fourier - noMidAttn, new UNet2DModel(c).parameterCount(), extra);
        }
    }

    @Test void upBlockResnetsHaveConcatProbesAndSplitTags() {
        UNet2DModel m = model(SMALL + "}");
        // up_blocks.0 (32 ch): resnets.0 = 32 (mid) + 32 (skip), resnets.1 = 32 + 16 (skip from down_blocks.0 downsampler)
        // up_blocks.1 (16 ch): resnets.0 = 32 (upsampled) + 16, resnets.1 = 16 + 16 (conv_in)
        String[][] expect = {{"up_blocks.0.resnets.0", "32", "64"}, {"up_blocks.0.resnets.1", "32", "48"},
                {"up_blocks.1.resnets.0", "32", "48"}, {"up_blocks.1.resnets.1", "16", "32"}};
        for (String[] e : expect) {
            assertEquals(LayerKind.ACTIVATION, m.layers().get(e[0] + ".concat").kind());
            assertEquals(e[1], m.layers().get(e[0] + ".conv1").tags().get("concat-split"), e[0]);
            assertEquals(e[1], m.layers().get(e[0] + ".conv_shortcut").tags().get("concat-split"), e[0]);
            assertEquals(Integer.parseInt(e[2]), m.layers().get(e[0] + ".norm1").params().get("weight").size(), e[0]);
        }
        assertEquals(4, m.layers().match("*.concat").size());
        assertFalse(m.layers().get("down_blocks.1.resnets.0.conv1").tags().containsKey("concat-split"));
    }

    @Test void temporalAndBlockTags() {
        UNet2DModel m = model(SMALL + ", \"num_class_embeds\": 5}");
        Set<String> temporal = new TreeSet<>();
        for (Layer l : m.layers().all()) {
            if ("true".equals(l.tags().get("temporal"))) temporal.add(l.name());
            assertNotNull(l.tags().get("block"), l.name() + " has no block tag");
            assertTrue(l.name().startsWith(l.tags().get("block")), l.name() + " block " + l.tags().get("block"));
        }
        Set<String> expected = new TreeSet<>(List.of("time_embedding.linear_1", "time_embedding.linear_2", "class_embedding"));
        for (Layer l : m.layers().match("*.time_emb_proj")) expected.add(l.name());
        assertEquals(expected, temporal);
        assertEquals(8, m.layers().match("*.time_emb_proj").size(), "2 down + 2 mid + 4 up ResNets");
        assertEquals("down_blocks.1.attentions.0", m.layers().get("down_blocks.1.attentions.0.to_q").tags().get("block"));
        assertEquals("down_blocks.1.attentions.0", m.layers().get("down_blocks.1.attentions.0.softmax").tags().get("block"));
        assertEquals("up_blocks.0.resnets.1", m.layers().get("up_blocks.0.resnets.1.concat").tags().get("block"));
        assertEquals("mid_block.resnets.1", m.layers().get("mid_block.resnets.1.conv2").tags().get("block"));
        assertEquals("down_blocks.0.downsamplers.0", m.layers().get("down_blocks.0.downsamplers.0.conv").tags().get("block"));
        UNet2DModel ts = model(SMALL + ", \"class_embed_type\": \"timestep\"}");
        assertEquals("true", ts.layers().get("class_embedding.linear_1").tags().get("temporal"));
    }

    // ------------------------------------------------------------------ weights

    @Test void loadsLegacyAttentionNamesAndRejectsMismatches() {
        UNet2DModel m = model(SMALL + "}");
        randomize(m, 1);
        Map<String, Tensor> legacy = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            String k = e.getKey().replace(".to_q.", ".query.").replace(".to_k.", ".key.").replace(".to_v.", ".value.")
                    .replace(".to_out.0.", ".proj_attn.");
            legacy.put(k, e.getValue().copy());
        }
        assertTrue(legacy.containsKey("down_blocks.1.attentions.0.query.weight"));
        UNet2DModel m2 = model(SMALL + "}");
        m2.loadWeights(legacy, "legacy.safetensors");
        Tensor x = randn(3, 2, 3, 16, 16);
        assertEquals(0f, maxAbsDiff(m.forward(x, new float[] {1, 700}, null), m2.forward(x, new float[] {1, 700}, null)));

        Map<String, Tensor> missing = new LinkedHashMap<>(m.stateDict());
        missing.remove("conv_out.bias");
        missing.put("conv_out.extra", Tensor.zeros(1));
        String msg = assertThrows(IllegalArgumentException.class, () -> m2.loadWeights(missing, "w.safetensors")).getMessage();
        assertTrue(msg.contains("w.safetensors") && msg.contains("conv_out.bias") && msg.contains("conv_out.extra"), msg);
        Map<String, Tensor> wrong = new LinkedHashMap<>(m.stateDict());
        wrong.put("down_blocks.1.attentions.0.to_q.weight", Tensor.zeros(32, 16));
        msg = assertThrows(IllegalArgumentException.class, () -> m2.loadWeights(wrong, "w.safetensors")).getMessage();
        assertTrue(msg.contains("down_blocks.1.attentions.0.to_q.weight") && msg.contains("[32, 32]"), msg);
    }

    // ------------------------------------------------------------------ forward

    @Test void zeroWeightsExceptConvOutBiasGiveThatBiasEverywhere() {
        for (String extra : new String[] {"", ", \"resnet_time_scale_shift\": \"scale_shift\", \"num_class_embeds\": 4",
                ", \"downsample_padding\": 0, \"attention_head_dim\": null, \"flip_sin_to_cos\": false, \"freq_shift\": 1"}) {
            UNet2DModel m = model(SMALL + ", \"out_channels\": 2" + extra + "}");
            m.layers().get("conv_out").setParam("bias", Tensor.of(new float[] {0.25f, -1.5f}, 2));
            int[] y = m.classConditional() ? new int[] {0, 3, 1} : null;
            Tensor out = m.forward(randn(1, 3, 3, 16, 16), new float[] {0, 10, 999}, y);
            assertArrayEquals(new int[] {3, 2, 16, 16}, out.shape());
            for (int i = 0; i < out.size(); i++) assertEquals((i / 256) % 2 == 0 ? 0.25f : -1.5f, out.data()[i], extra);
        }
        // fourier models divide the output by the noise level
        UNet2DModel f = model(SMALL + ", \"time_embedding_type\": \"fourier\"}");
        f.layers().get("conv_out").setParam("bias", Tensor.of(new float[] {1f, 2f, 3f}, 3));
        Tensor out = f.forward(randn(2, 2, 3, 16, 16), new float[] {0.5f, 4f}, null);
        assertEquals(2f / 0.5f, out.get(0, 1, 5, 5), 1e-6f);
        assertEquals(3f / 4f, out.get(1, 2, 15, 0), 1e-6f);
    }

    @Test void fastPathsEqualTheExplicitComposition() {
        for (String extra : new String[] {"", ", \"resnet_time_scale_shift\": \"scale_shift\", \"num_class_embeds\": 4",
                ", \"attention_head_dim\": null, \"downsample_padding\": 0"}) {
            UNet2DModel m = model(SMALL + extra + "}");
            randomize(m, 7);
            Tensor x = randn(11, 3, 3, 16, 16);
            float[] t = {0, 321, 999};
            int[] y = m.classConditional() ? new int[] {2, 0, 3} : null;
            m.setFastPaths(true);
            Tensor fast = m.forward(x, t, y);
            m.setFastPaths(false);
            Tensor explicit = m.forward(x, t, y);
            float scale = 0;
            for (float v : fast.data()) scale = Math.max(scale, Math.abs(v));
            assertTrue(scale > 0.1f, "non-trivial output");
            assertTrue(maxAbsDiff(fast, explicit) < 2e-5f * Math.max(1, scale), extra + ": " + maxAbsDiff(fast, explicit));
            // a pass-through hook on the softmax probes and norms forces the explicit path inside the fast mode
            m.setFastPaths(true);
            LayerHook nop = new LayerHook() {};
            for (Layer l : m.layers().match("*.softmax")) l.addHook(nop);
            for (Layer l : m.layers().ofKind(LayerKind.NORM)) l.addHook(nop);
            assertTrue(maxAbsDiff(m.forward(x, t, y), explicit) < 1e-6f * Math.max(1, scale));
            m.layers().clearAllHooks();
        }
    }

    @Test void everyLayerRunsOnceWithItsHooksAndSeesTheOriginalTimesteps() {
        UNet2DModel m = model(SMALL + ", \"num_class_embeds\": 3}");
        randomize(m, 3);
        Map<String, AtomicInteger> calls = new HashMap<>();
        Map<String, int[]> shapes = new HashMap<>();
        List<float[]> seenT = new ArrayList<>();
        for (Layer l : m.layers().all()) {
            AtomicInteger c = calls.computeIfAbsent(l.name(), k -> new AtomicInteger());
            l.addHook(new LayerHook() {
                @Override public Tensor output(Layer layer, Tensor y, ForwardContext ctx) {
                    c.incrementAndGet();
                    shapes.put(layer.name(), y.shape());
                    seenT.add(ctx.t());
                    return y;
                }
            });
        }
        Tensor x = randn(5, 2, 3, 16, 16);
        Tensor withHooks = m.forward(x, new float[] {17, 900}, new int[] {2, 0});
        for (var e : calls.entrySet()) assertEquals(1, e.getValue().get(), e.getKey() + " should run once");
        for (float[] t : seenT) assertArrayEquals(new float[] {17, 900}, t);
        assertArrayEquals(new int[] {2, 64, 32}, shapes.get("down_blocks.1.attentions.0.q"), "q [N, HW, inner]");
        assertArrayEquals(new int[] {2, 4, 64, 64}, shapes.get("down_blocks.1.attentions.0.softmax"), "probabilities [N, heads, HW, HW]");
        assertArrayEquals(new int[] {2, 64, 8, 8}, shapes.get("up_blocks.0.resnets.0.concat"));
        assertArrayEquals(new int[] {2, 48, 16, 16}, shapes.get("up_blocks.1.resnets.0.concat"));
        assertArrayEquals(new int[] {2, 64}, shapes.get("class_embedding"));
        m.layers().clearAllHooks();
        assertEquals(0f, maxAbsDiff(withHooks, m.forward(x, new float[] {17, 900}, new int[] {2, 0})), 2e-5f, "explicit (hooked) vs fused path");
    }

    @Test void hooksReplacingActivationsChangeTheOutput() {
        UNet2DModel m = model(SMALL + "}");
        randomize(m, 5);
        Tensor x = randn(6, 1, 3, 16, 16);
        Tensor ref = m.forward(x, new float[] {250}, null);
        // uniform attention probabilities: the attention output becomes the mean of v over tokens
        Layer sm = m.layers().get("down_blocks.1.attentions.0.softmax");
        sm.addHook(new LayerHook() {
            @Override public Tensor output(Layer layer, Tensor p, ForwardContext ctx) {
                return Tensor.full(1f / p.dim(-1), p.shape());
            }
        });
        Tensor changed = m.forward(x, new float[] {250}, null);
        assertTrue(maxAbsDiff(ref, changed) > 1e-3f);
        sm.clearHooks();
        // a hook returning an equal copy of the concatenation leaves the output bit-identical
        Layer cat = m.layers().get("up_blocks.1.resnets.1.concat");
        cat.addHook(new LayerHook() {
            @Override public Tensor output(Layer layer, Tensor y, ForwardContext ctx) { return y.copy(); }
        });
        assertEquals(0f, maxAbsDiff(ref, m.forward(x, new float[] {250}, null)));
    }

    @Test void batchElementsAreIndependent() {
        UNet2DModel m = model(SMALL + ", \"resnet_time_scale_shift\": \"scale_shift\", \"num_class_embeds\": 6}");
        randomize(m, 9);
        int n = 5;
        Tensor x = randn(8, n, 3, 16, 16);
        float[] t = {0, 1, 250, 500, 999};
        int[] y = {5, 4, 3, 2, 1};
        Tensor all = m.forward(x, t, y);
        for (int i = 0; i < n; i++) {
            Tensor one = m.forward(x.sliceRows(i, i + 1), new float[] {t[i]}, new int[] {y[i]});
            assertTrue(maxAbsDiff(one, all.sliceRows(i, i + 1)) < 1e-5f, "sample " + i);
        }
        Tensor other = m.forward(x.sliceRows(0, 1), new float[] {0}, new int[] {4});
        assertTrue(maxAbsDiff(other, all.sliceRows(0, 1)) > 1e-4f, "the class label matters");
    }

    @Test void badInputsAreRejectedWithClearMessages() {
        UNet2DModel m = model(SMALL + "}");
        Tensor x = Tensor.zeros(2, 3, 16, 16);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(Tensor.zeros(2, 4, 16, 16), new float[2], null))
                .getMessage().contains("in_channels is 3"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(Tensor.zeros(2, 3, 15, 16), new float[2], null))
                .getMessage().contains("multiple of 2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[3], null))
                .getMessage().contains("3 timesteps for a batch of 2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[2], new int[] {0, 1}))
                .getMessage().contains("no class embedding"));
        UNet2DModel c = model(SMALL + ", \"num_class_embeds\": 4}");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> c.forward(x, new float[2], null))
                .getMessage().contains("class labels are required"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> c.forward(x, new float[2], new int[] {0, 4}))
                .getMessage().contains("y[1] = 4 outside [0, 4)"));
        assertEquals(4, c.numClasses());
        assertFalse(c.learnSigma());
        assertEquals("UNet2DModel", c.architecture());
        UNet2DModel id = model(SMALL + ", \"class_embed_type\": \"identity\"}");
        assertThrows(IllegalArgumentException.class, () -> id.forward(x, new float[2], new int[] {0, 1}));
        Tensor emb = randn(4, 2, 64);
        assertArrayEquals(new int[] {2, 3, 16, 16}, id.forwardWithClassEmbedding(x, new float[] {3, 4}, emb).shape());
        assertThrows(IllegalArgumentException.class, () -> id.forwardWithClassEmbedding(x, new float[] {3, 4}, randn(4, 2, 63)));
    }

    @Test void learnedTimeEmbeddingLooksUpRows() {
        UNet2DModel m = model(SMALL + ", \"time_embedding_type\": \"learned\", \"num_train_timesteps\": 10}");
        assertArrayEquals(new int[] {10, 16}, m.stateDict().get("time_proj.weight").shape());
        assertEquals("true", m.layers().get("time_proj").tags().get("temporal"));
        randomize(m, 2);
        Tensor x = randn(1, 1, 3, 16, 16);
        assertTrue(maxAbsDiff(m.forward(x, new float[] {3}, null), m.forward(x, new float[] {4}, null)) > 1e-4f);
        assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[] {10}, null));
        assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[] {2.5f}, null));
    }
}
