package io.diffquant.engine.quant;

import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Probe;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Shared helpers of the quantization tests: the golden test models, random tensors, a tiny model with a concat split. */
public final class QuantTestSupport {
    private QuantTestSupport() {}

    public static final Path GOLDEN = Path.of("src/test/resources/golden");

    /** The golden dit-small (8x8x4, hidden 64, depth 2, 4 heads, 10 classes, learn_sigma). */
    public static DiT ditSmall() throws IOException {
        Path dir = GOLDEN.resolve("dit-small");
        DiT m = new DiT(DiTConfig.fromJson(dir.resolve("config.json")));
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("model.safetensors"))) {
            m.loadWeights(r.readAllFloat(), dir.toString());
        }
        return m;
    }

    /** The golden unet-small (diffusers UNet2DModel, 16x16x3, channels 16/32, attention in the second level). */
    public static io.diffquant.engine.model.unet.UNet2DModel unetSmall() throws IOException {
        return (io.diffquant.engine.model.unet.UNet2DModel) io.diffquant.engine.model.ModelFolder.load(GOLDEN.resolve("unet-small")).model();
    }

    /** A DiT with N(0, std) weights. */
    public static DiT randomDiT(DiTConfig cfg, long seed, double std) {
        DiT m = new DiT(cfg);
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet())
            sd.put(e.getKey(), e.getKey().equals("pos_embed") ? e.getValue().copy() : rand(r, std, e.getValue().shape()));
        m.loadWeights(sd, "random(" + seed + ")");
        return m;
    }

    public static Tensor rand(Random r, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * std);
        return t;
    }

    public static float[] fill(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    /** Records the input (after earlier hooks) and the weight each call of a layer computes with. */
    public static final class Recorder implements LayerHook {
        public final List<Tensor> inputs = new ArrayList<>(), weights = new ArrayList<>();
        @Override public Tensor input(Layer l, Tensor x, ForwardContext c) { inputs.add(x); return x; }
        @Override public Tensor weight(Layer l, Tensor w, ForwardContext c) { weights.add(w); return w; }
    }

    /**
     * A tiny conv model standing in for a UNet up block: cat([a, b]) (2 + 3 channels) -> conv1 (tagged
     * concat-split=2) -> probe "mid.q" -> per-pixel Linear "head" (3 -> 3).
     */
    public static final class TinyConcatModel extends DiffusionModel {
        final Conv2d conv;
        final Probe probe;
        final Linear head;

        public TinyConcatModel(long seed) {
            conv = layers.add(new Conv2d("up.conv1", 5, 3, 3, 1, 1, true));
            conv.tag("concat-split", "2");
            probe = layers.add(new Probe("mid.q"));
            head = layers.add(new Linear("head", 3, 3, true));
            Random r = new Random(seed);
            Map<String, Tensor> sd = new LinkedHashMap<>();
            for (var e : stateDict().entrySet()) sd.put(e.getKey(), rand(r, 0.5, e.getValue().shape()));
            loadStateDict(sd, "tiny");
        }

        @Override public String architecture() { return "Tiny"; }
        @Override public int inChannels() { return 5; }
        @Override public int outChannels() { return 3; }
        @Override public int sampleSize() { return 4; }
        @Override public int numClasses() { return 0; }
        @Override public boolean learnSigma() { return false; }

        @Override public Tensor forward(Tensor x, float[] t, int[] y) {
            ForwardContext ctx = new ForwardContext(t.clone(), null);
            Tensor h = conv.forward(x, ctx);
            h = probe.forward(h, ctx);
            int n = h.dim(0), c = h.dim(1), s = h.dim(2) * h.dim(3);
            Tensor tokens = Ops.permute4(h.reshape(n, c, s, 1), 0, 2, 3, 1).reshape(n, s, c);
            return head.forward(tokens, ctx);
        }
    }
}
