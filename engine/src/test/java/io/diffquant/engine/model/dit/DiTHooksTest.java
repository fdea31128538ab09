package io.diffquant.engine.model.dit;

import static io.diffquant.engine.testing.Golden.maxAbsDiff;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.diffquant.engine.model.dit.DiTTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/** Hooks on every DiT layer and on the attention probes. */
class DiTHooksTest {
    static final DiTConfig CFG = new DiTConfig(8, 2, 3, 32, 2, 4, 4.0, 0.1, 5, true);
    static final int N = 2, T = 16, D = 32, H = 4, HD = 8;
    final Random r = new Random(17);
    final Tensor x = rand(r, 1.0, N, 3, 8, 8);
    final float[] t = {20, 850};
    final int[] y = {4, 5};

    /** std 0.15 keeps the output O(1) (max about 2.7), so absolute tolerances mean something. */
    private static DiT model() { return randomModel(CFG, 42, 0.15); }

    /** The same random model with some parameters replaced. */
    private static DiT modelWith(Map<String, Tensor> changes) {
        DiT m = model();
        Map<String, Tensor> sd = new HashMap<>(m.stateDict());
        sd.putAll(changes);
        m.loadWeights(sd, "test");
        return m;
    }

    private static Tensor zerosLike(Tensor a) { return Tensor.zeros(a.shape()); }

    @Test void outputHookChangesTheResultLikeZeroingTheLayer() {
        DiT m = model();
        Tensor plain = m.forward(x, t, y);
        m.layers().get("blocks.0.mlp.fc2").addHook(new LayerHook() {
            @Override public Tensor output(Layer l, Tensor out, ForwardContext c) { return zerosLike(out); }
        });
        Tensor hooked = m.forward(x, t, y);
        assertTrue(maxAbsDiff(plain, hooked) > 1e-3, "the hook matters");
        Map<String, Tensor> sd = m.stateDict();
        DiT zeroed = modelWith(Map.of("blocks.0.mlp.fc2.weight", zerosLike(sd.get("blocks.0.mlp.fc2.weight")),
                "blocks.0.mlp.fc2.bias", zerosLike(sd.get("blocks.0.mlp.fc2.bias"))));
        assertArrayEquals(zeroed.forward(x, t, y).data(), hooked.data());
        m.layers().clearAllHooks();
        assertArrayEquals(plain.data(), m.forward(x, t, y).data(), "hooks removed: back to the plain result");
    }

    @Test void replaceHookReplacesTheComputation() {
        DiT m = model();
        int[] computed = {0};
        m.layers().get("blocks.1.attn.proj").addHook(new LayerHook() {
            @Override public Tensor replace(Layer l, Tensor in, ForwardContext c) { computed[0]++; return zerosLike(in); }
        });
        Tensor hooked = m.forward(x, t, y);
        assertEquals(1, computed[0]);
        Map<String, Tensor> sd = m.stateDict();
        DiT zeroed = modelWith(Map.of("blocks.1.attn.proj.weight", zerosLike(sd.get("blocks.1.attn.proj.weight")),
                "blocks.1.attn.proj.bias", zerosLike(sd.get("blocks.1.attn.proj.bias"))));
        assertArrayEquals(zeroed.forward(x, t, y).data(), hooked.data());
    }

    @Test void weightHookActsLikeChangedWeights() {
        DiT m = model();
        m.layers().get("blocks.0.attn.qkv").addHook(new LayerHook() {
            @Override public Tensor weight(Layer l, Tensor w, ForwardContext c) { return Ops.scale(w, 0.5f); }
        });
        Tensor hooked = m.forward(x, t, y);
        DiT halved = modelWith(Map.of("blocks.0.attn.qkv.weight", Ops.scale(m.stateDict().get("blocks.0.attn.qkv.weight"), 0.5f)));
        assertArrayEquals(halved.forward(x, t, y).data(), hooked.data());
    }

    @Test void hooksSeeTheRightShapesAndTheContext() {
        DiT m = model();
        Map<String, int[]> in = new HashMap<>(), out = new HashMap<>();
        List<ForwardContext> ctxs = new ArrayList<>();
        for (Layer l : m.layers().all()) l.addHook(new LayerHook() {
            @Override public Tensor input(Layer layer, Tensor v, ForwardContext c) { in.put(layer.name(), v.shape()); ctxs.add(c); return v; }
            @Override public Tensor output(Layer layer, Tensor v, ForwardContext c) { out.put(layer.name(), v.shape()); return v; }
        });
        m.forward(x, t, y);
        assertEquals(m.layers().size(), in.size(), "every layer ran");
        Object[][] expect = {
                {"x_embedder.proj", new int[] {N, 3, 8, 8}, new int[] {N, D, 4, 4}},
                {"t_embedder.mlp.0", new int[] {N, 256}, new int[] {N, D}},
                {"t_embedder.mlp.2", new int[] {N, D}, new int[] {N, D}},
                {"y_embedder.embedding_table", new int[] {N}, new int[] {N, D}},
                {"blocks.1.norm1", new int[] {N, T, D}, new int[] {N, T, D}},
                {"blocks.1.attn.qkv", new int[] {N, T, D}, new int[] {N, T, 3 * D}},
                {"blocks.1.attn.q", new int[] {N, H, T, HD}, new int[] {N, H, T, HD}},
                {"blocks.1.attn.k", new int[] {N, H, T, HD}, new int[] {N, H, T, HD}},
                {"blocks.1.attn.v", new int[] {N, H, T, HD}, new int[] {N, H, T, HD}},
                {"blocks.1.attn.softmax", new int[] {N, H, T, T}, new int[] {N, H, T, T}},
                {"blocks.1.attn.proj", new int[] {N, T, D}, new int[] {N, T, D}},
                {"blocks.1.norm2", new int[] {N, T, D}, new int[] {N, T, D}},
                {"blocks.1.mlp.fc1", new int[] {N, T, D}, new int[] {N, T, 4 * D}},
                {"blocks.1.mlp.fc2", new int[] {N, T, 4 * D}, new int[] {N, T, D}},
                {"blocks.1.adaLN_modulation.1", new int[] {N, D}, new int[] {N, 6 * D}},
                {"final_layer.norm_final", new int[] {N, T, D}, new int[] {N, T, D}},
                {"final_layer.linear", new int[] {N, T, D}, new int[] {N, T, 2 * 2 * 6}},
                {"final_layer.adaLN_modulation.1", new int[] {N, D}, new int[] {N, 2 * D}},
        };
        for (Object[] e : expect) {
            assertArrayEquals((int[]) e[1], in.get((String) e[0]), "input of " + e[0]);
            assertArrayEquals((int[]) e[2], out.get((String) e[0]), "output of " + e[0]);
        }
        ForwardContext first = ctxs.getFirst();
        for (ForwardContext c : ctxs) assertSame(first, c, "one context per call");
        assertArrayEquals(t, first.t());
        assertArrayEquals(y, first.y());
    }

    @Test void probesSeeQkvAndProbabilitiesAndTheExplicitPathEqualsTheFusedOne() {
        DiT m = model();
        Tensor fused = m.forward(x, t, y);
        Map<String, Tensor> seen = new HashMap<>();
        LayerHook record = new LayerHook() {
            @Override public Tensor output(Layer l, Tensor v, ForwardContext c) { seen.put(l.name(), v); return v; }
        };
        for (String p : new String[] {"q", "k", "v", "softmax", "qkv"}) m.layers().get("blocks.0.attn." + p).addHook(record);
        Tensor explicit = m.forward(x, t, y);
        assertTrue(maxAbsDiff(fused, explicit) <= 1e-5, "explicit vs fused: " + maxAbsDiff(fused, explicit));
        Tensor qkv = seen.get("blocks.0.attn.qkv");
        for (int w = 0; w < 3; w++) {
            Tensor s = seen.get("blocks.0.attn." + "qkv".charAt(w));
            assertArrayEquals(new int[] {N, H, T, HD}, s.shape());
            for (int b = 0; b < N; b++) for (int h = 0; h < H; h++) for (int tok = 0; tok < T; tok++) for (int e = 0; e < HD; e++)
                assertEquals(qkv.get(b, tok, w * D + h * HD + e), s.get(b, h, tok, e), "qkv".charAt(w) + " element");
        }
        Tensor p = seen.get("blocks.0.attn.softmax");
        assertArrayEquals(new int[] {N, H, T, T}, p.shape());
        for (int row = 0; row < N * H * T; row++) {
            double sum = 0;
            for (int j = 0; j < T; j++) { float v = p.data()[row * T + j]; assertTrue(v > 0 && v < 1); sum += v; }
            assertEquals(1.0, sum, 1e-6);
        }
        // all probes of every block hooked: the explicit path everywhere
        for (Layer l : m.layers().match("blocks.*.attn.*")) l.addHook(new LayerHook() {});
        assertTrue(maxAbsDiff(fused, m.forward(x, t, y)) <= 1e-5);
    }

    @Test void replacingTheProbabilitiesByUniformOnesAveragesV() {
        DiT m = model();
        Map<String, Tensor> seen = new HashMap<>();
        m.layers().get("blocks.1.attn.softmax").addHook(new LayerHook() {
            @Override public Tensor output(Layer l, Tensor v, ForwardContext c) { return Tensor.full(1f / T, v.shape()); }
        });
        m.layers().get("blocks.1.attn.v").addHook(new LayerHook() {
            @Override public Tensor output(Layer l, Tensor v, ForwardContext c) { seen.put("v", v); return v; }
        });
        m.layers().get("blocks.1.attn.proj").addHook(new LayerHook() {
            @Override public Tensor input(Layer l, Tensor v, ForwardContext c) { seen.put("attn", v); return v; }
        });
        m.forward(x, t, y);
        Tensor v = seen.get("v"), a = seen.get("attn");
        for (int b = 0; b < N; b++) for (int h = 0; h < H; h++) for (int e = 0; e < HD; e++) {
            double mean = 0;
            for (int tok = 0; tok < T; tok++) mean += v.get(b, h, tok, e) / T;
            for (int tok = 0; tok < T; tok++) assertEquals(mean, a.get(b, tok, h * HD + e), 1e-5);
        }
    }

    @Test void hookedNormsTakeTheUnfusedPathWithTheSameResult() {
        DiT m = model();
        Tensor fused = m.forward(x, t, y);
        List<Tensor> normed = new ArrayList<>();
        for (Layer l : m.layers().match("*norm*")) l.addHook(new LayerHook() {
            @Override public Tensor output(Layer layer, Tensor v, ForwardContext c) { normed.add(v); return v; }
        });
        Tensor unfused = m.forward(x, t, y);
        assertEquals(5, normed.size());
        assertTrue(maxAbsDiff(fused, unfused) <= 1e-5, "unfused vs fused " + maxAbsDiff(fused, unfused));
        for (Tensor n : normed) for (int row = 0; row < N * T; row++) {
            double mean = 0, var = 0;
            for (int j = 0; j < D; j++) mean += n.data()[row * D + j] / D;
            for (int j = 0; j < D; j++) var += Math.pow(n.data()[row * D + j] - mean, 2) / D;
            assertEquals(0, mean, 1e-5);
            assertEquals(1, var, 1e-3);
        }
    }

    /**
     * The model must not overwrite a tensor that a hook has seen. The GELU runs in place on fc1's output and the
     * gated residuals write into proj's / fc2's outputs only when those layers have no hooks: here fc1 and proj
     * stay unhooked (so the in-place paths run) while the layers downstream observe their inputs.
     */
    @Test void tensorsHandedToHooksAreNotModifiedLater() {
        DiT m = model();
        Tensor plain = m.forward(x, t, y);
        Map<Tensor, Tensor> copies = new IdentityHashMap<>();
        List<String> observed = new ArrayList<>();
        for (Layer l : m.layers().all()) {
            if (l.name().endsWith("mlp.fc1") || l.name().endsWith("attn.proj")) continue;
            l.addHook(new LayerHook() {
                @Override public Tensor input(Layer layer, Tensor v, ForwardContext c) {
                    copies.put(v, v.copy());
                    observed.add(layer.name());
                    return v;
                }
            });
        }
        Tensor hooked = m.forward(x, t, y);
        assertTrue(observed.contains("blocks.0.mlp.fc2") && observed.contains("blocks.1.norm2"));
        for (var e : copies.entrySet()) assertArrayEquals(e.getValue().data(), e.getKey().data(), "a tensor seen by a hook changed");
        assertTrue(maxAbsDiff(plain, hooked) <= 1e-5);
    }
}
