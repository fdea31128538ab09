package io.diffquant.engine.model.vae;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

import static io.diffquant.engine.model.vae.VaeTesting.*;
import static org.junit.jupiter.api.Assertions.*;

/** Hooks on the VAE's layers: which layers fire for decode/encode, in what order, what they see, and that they act. */
class AutoencoderKLHookTest {
    static AutoencoderKL vae;
    static Map<String, Tensor> io;

    @BeforeAll
    static void load() throws IOException {
        vae = AutoencoderKL.load(smallFolder());
        io = readAll(smallFolder().resolve("io.safetensors"));
    }

    /** Records the names of layers whose output hook ran, and the shapes they produced. */
    static final class Recorder implements LayerHook {
        final List<String> order = new ArrayList<>();
        final Map<String, int[]> shapes = new LinkedHashMap<>();
        final List<ForwardContext> contexts = new ArrayList<>();

        @Override public synchronized Tensor output(Layer layer, Tensor y, ForwardContext ctx) {
            order.add(layer.name());
            shapes.put(layer.name(), y.shape());
            contexts.add(ctx);
            return y;
        }
    }

    @Test
    void decodeRunsEveryDecoderLayerOnceAndNoEncoderLayer() {
        Recorder rec = new Recorder();
        vae.layers().all().forEach(l -> l.addHook(rec));
        try {
            Tensor out = vae.decode(io.get("latents"));
            assertClose(io.get("decoded"), out, 1e-4f, "identity hooks leave the result unchanged");
        } finally {
            vae.layers().clearAllHooks();
        }
        List<String> decoderLayers = vae.layers().all().stream().map(Layer::name)
                .filter(n -> n.startsWith("decoder.") || n.equals("post_quant_conv")).toList();
        assertEquals(decoderLayers.size(), rec.order.size(), "each decoder layer (incl. probes) fires exactly once");
        assertEquals(new java.util.TreeSet<>(decoderLayers), new java.util.TreeSet<>(rec.order));
        // execution order: post_quant_conv, conv_in, the mid block, then up blocks, then the output layers
        assertEquals("post_quant_conv", rec.order.get(0));
        assertEquals("decoder.conv_in", rec.order.get(1));
        assertEquals("decoder.mid_block.resnets.0.norm1", rec.order.get(2));
        assertTrue(rec.order.indexOf("decoder.mid_block.resnets.1.conv2") < rec.order.indexOf("decoder.up_blocks.0.resnets.0.norm1"));
        assertEquals("decoder.conv_out", rec.order.getLast());
        assertTrue(rec.contexts.stream().allMatch(c -> c == ForwardContext.NONE), "the VAE has no timestep");
        // what the layers produced
        assertArrayEquals(new int[] {2, 16, 8, 8}, rec.shapes.get("decoder.conv_in"));
        assertArrayEquals(new int[] {2, 64, 16}, rec.shapes.get("decoder.mid_block.attentions.0.q"), "tokens [N, HW, C]");
        assertArrayEquals(new int[] {2, 1, 64, 64}, rec.shapes.get("decoder.mid_block.attentions.0.softmax"), "one head");
        assertArrayEquals(new int[] {2, 16, 16, 16}, rec.shapes.get("decoder.up_blocks.0.upsamplers.0.conv"));
        assertArrayEquals(new int[] {2, 8, 32, 32}, rec.shapes.get("decoder.up_blocks.2.resnets.0.conv_shortcut"));
        assertArrayEquals(new int[] {2, 3, 32, 32}, rec.shapes.get("decoder.conv_out"));
    }

    @Test
    void encodeRunsEveryEncoderLayerAndTheDownsamplerSeesThePaddedInput() {
        Recorder rec = new Recorder();
        AtomicReference<int[]> downIn = new AtomicReference<>();
        vae.layers().all().forEach(l -> l.addHook(rec));
        vae.layers().get("encoder.down_blocks.0.downsamplers.0.conv").addHook(new LayerHook() {
            @Override public Tensor input(Layer layer, Tensor x, ForwardContext ctx) {
                downIn.set(x.shape());
                return x;
            }
        });
        try {
            assertClose(io.get("moments"), vae.moments(io.get("images")), 1e-4f, "identity hooks");
        } finally {
            vae.layers().clearAllHooks();
        }
        List<String> encoderLayers = vae.layers().all().stream().map(Layer::name)
                .filter(n -> n.startsWith("encoder.") || n.equals("quant_conv")).toList();
        assertEquals(encoderLayers.size(), rec.order.size());
        assertEquals("quant_conv", rec.order.getLast());
        assertArrayEquals(new int[] {2, 8, 33, 33}, downIn.get(), "F.pad (0, 1, 0, 1) before the stride-2 conv");
        assertArrayEquals(new int[] {2, 8, 16, 16}, rec.shapes.get("encoder.down_blocks.0.downsamplers.0.conv"));
    }

    @Test
    void probabilitiesSeenByTheSoftmaxProbeAreRowStochastic() {
        AtomicReference<Tensor> probs = new AtomicReference<>();
        Layer sm = vae.layers().get("encoder.mid_block.attentions.0.softmax");
        sm.addHook(new LayerHook() {
            @Override public Tensor output(Layer layer, Tensor y, ForwardContext ctx) {
                probs.set(y);
                return y;
            }
        });
        try {
            assertClose(io.get("moments"), vae.moments(io.get("images")), 1e-4f, "explicit attention path");
        } finally {
            sm.clearHooks();
        }
        Tensor p = probs.get();
        assertArrayEquals(new int[] {2, 1, 64, 64}, p.shape(), "[N, heads, T, T] at the 8x8 encoder bottleneck");
        for (int r = 0; r < p.size() / 64; r++) {
            double s = 0;
            for (int j = 0; j < 64; j++) {
                float v = p.data()[r * 64 + j];
                assertTrue(v >= 0f && v <= 1f);
                s += v;
            }
            assertEquals(1.0, s, 1e-5, "row " + r);
        }
    }

    @Test
    void weightAndReplaceHooksChangeTheComputation() {
        Tensor z = io.get("latents");
        Layer convOut = vae.layers().get("decoder.conv_out");
        // zero weight: the output is the bias broadcast over the image
        convOut.addHook(new LayerHook() {
            @Override public Tensor weight(Layer layer, Tensor w, ForwardContext ctx) { return Tensor.zeros(w.shape()); }
        });
        Tensor out;
        try {
            out = vae.decode(z);
        } finally {
            convOut.clearHooks();
        }
        float[] bias = convOut.param("bias").data();
        for (int i = 0; i < out.size(); i++) assertEquals(bias[(i / (32 * 32)) % 3], out.data()[i], 0f, "element " + i);

        // replacing the post_quant_conv by identity = a model without post_quant_conv
        Layer pq = vae.layers().get("post_quant_conv");
        pq.addHook(new LayerHook() {
            @Override public Tensor replace(Layer layer, Tensor x, ForwardContext ctx) { return x; }
        });
        Tensor replaced;
        try {
            replaced = vae.decodeRaw(z);
        } finally {
            pq.clearHooks();
        }
        AutoencoderKLConfig c = vae.config();
        AutoencoderKL noPq = new AutoencoderKL(new AutoencoderKLConfig(c.inChannels(), c.outChannels(), c.downBlockTypes(),
                c.upBlockTypes(), c.blockOutChannels(), c.layersPerBlock(), c.actFn(), c.latentChannels(), c.normNumGroups(),
                c.sampleSize(), c.scalingFactor(), c.shiftFactor(), c.useQuantConv(), false, c.midBlockAddAttention()));
        Map<String, Tensor> sd = new LinkedHashMap<>(vae.stateDict());
        sd.remove("post_quant_conv.weight");
        sd.remove("post_quant_conv.bias");
        noPq.loadStateDict(sd, "without post_quant_conv");
        assertClose(noPq.decodeRaw(z), replaced, 1e-5f, "replace hook = layer removed");
        assertTrue(maxAbsDiff(replaced, vae.decodeRaw(z)) > 1e-2f, "post_quant_conv matters");
    }

    @Test
    void hooksOnNormsAndConv2StillGiveTheGoldenResultAndKeepWhatTheySaw() {
        // hooked norms take the unfused path; hooked conv2 outputs are copied before the in-place residual add,
        // so a tensor a hook kept is never modified afterwards
        List<Tensor> kept = new ArrayList<>(), copies = new ArrayList<>();
        LayerHook keep = new LayerHook() {
            @Override public synchronized Tensor output(Layer layer, Tensor y, ForwardContext ctx) {
                kept.add(y);
                copies.add(y.copy());
                return y;
            }
        };
        vae.layers().match("decoder.*norm*").forEach(l -> l.addHook(keep));
        vae.layers().match("decoder.*conv2").forEach(l -> l.addHook(keep));
        try {
            assertClose(io.get("decoded"), vae.decode(io.get("latents")), 1e-4f, "hooked norms and conv2");
        } finally {
            vae.layers().clearAllHooks();
        }
        int conv2 = vae.layers().match("decoder.*conv2").size(), norms = vae.layers().match("decoder.*norm*").size();
        assertEquals(conv2 + norms, kept.size());
        for (int i = 0; i < kept.size(); i++) assertClose(copies.get(i), kept.get(i), 0f, "kept output " + i + " unchanged");
    }
}
