package io.diffquant.engine.analysis;

import io.diffquant.engine.model.BlockObserver;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The temporal features e_i(t[, y]) of a denoiser (TFMQ, ALGORITHMS.md §6): the outputs of the Temporal Information
 * Block that the rest of the network consumes, computed by running only the TIB (with whatever hooks are attached, so a
 * quantized TIB gives ê_i). DiT: every {@code blocks.N.adaLN_modulation.1} and {@code final_layer.adaLN_modulation.1}
 * (input SiLU(t_embedder(t) + y_embedder(y))). UNet: every ResNet block's {@code time_emb_proj} (input SiLU(temb)).
 */
public interface TemporalFeatureSource {
    /** Feature names = the state_dict prefixes of the layers whose outputs they are, in model order. */
    List<String> features();

    /** The labels the features depend on: null for unconditional models. */
    boolean classConditional();

    /**
     * Features of rows (t, y[r]) for one timestep value (per-timestep quantization needs one t per call).
     * @param y labels, or null for unconditional models (then one row)
     * @return feature name -> [rows, dim]
     */
    Map<String, Tensor> compute(float t, int[] y);

    /** The TIB of a DiT or UNet2DModel. */
    static TemporalFeatureSource of(DiffusionModel model) {
        if (model instanceof DiT d) return new DiTSource(d);
        if (model instanceof UNet2DModel u) return new UNetSource(u);
        throw new IllegalArgumentException(model.architecture() + ": temporal features are defined for DiT and UNet2DModel only");
    }

    /** DiT: c = t_embedder(t) + y_embedder(y), e_i = adaLN_modulation_i(SiLU(c)). */
    final class DiTSource implements TemporalFeatureSource {
        private final DiT dit;
        private final List<Layer> layers = new ArrayList<>();

        DiTSource(DiT dit) {
            this.dit = dit;
            for (int i = 0; i < dit.depth(); i++) layers.add(dit.layers().get("blocks." + i + ".adaLN_modulation.1"));
            layers.add(dit.layers().get("final_layer.adaLN_modulation.1"));
        }

        @Override public List<String> features() { return layers.stream().map(Layer::name).toList(); }
        @Override public boolean classConditional() { return dit.numClasses() > 0; }

        @Override public Map<String, Tensor> compute(float t, int[] y) {
            int rows = y == null ? 1 : y.length;
            float[] ts = new float[rows];
            Arrays.fill(ts, t);
            ForwardContext ctx = new ForwardContext(ts, y == null ? null : y.clone());
            Tensor s = TransformerOps.silu(dit.conditioning(ctx));
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (Layer l : layers) out.put(l.name(), l.forward(s, ctx));
            return out;
        }
    }

    /** UNet2DModel: SiLU(temb) as the first ResNet block sees it (the pass stops there), e_i = time_emb_proj_i(SiLU(temb)). */
    final class UNetSource implements TemporalFeatureSource {
        private final UNet2DModel unet;
        private final List<Layer> layers = new ArrayList<>();

        UNetSource(UNet2DModel unet) {
            this.unet = unet;
            for (Layer l : unet.layers().all()) if (l.name().endsWith(".time_emb_proj")) layers.add(l);
            if (layers.isEmpty()) throw new IllegalArgumentException("UNet2DModel without time_emb_proj layers: no temporal features");
        }

        @Override public List<String> features() { return layers.stream().map(Layer::name).toList(); }
        @Override public boolean classConditional() { return unet.numClasses() > 0; }

        private static final class Stop extends RuntimeException {
            final Tensor tembAct;
            Stop(Tensor t) { super(null, null, false, false); tembAct = t; }
        }

        @Override public Map<String, Tensor> compute(float t, int[] y) {
            int rows = y == null ? 1 : y.length;
            float[] ts = new float[rows];
            Arrays.fill(ts, t);
            int s = unet.sampleSize();
            Tensor x = Tensor.zeros(rows, unet.inChannels(), s, s);
            Tensor temb;
            try {
                unet.forward(x, ts, y == null ? null : y.clone(), new BlockObserver() {
                    @Override public void input(String block, Tensor[] inputs, ForwardContext ctx) {
                        if (inputs.length == 2) throw new Stop(inputs[1]);
                    }
                });
                throw new IllegalStateException("UNet2DModel: no ResNet block saw the time embedding");
            } catch (Stop stop) {
                temb = stop.tembAct;
            }
            ForwardContext ctx = new ForwardContext(ts, y == null ? null : y.clone());
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (Layer l : layers) out.put(l.name(), l.forward(temb, ctx));
            return out;
        }
    }
}
