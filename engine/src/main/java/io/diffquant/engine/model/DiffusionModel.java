package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Base of the denoisers: holds the layer registry and model-level buffers (e.g. DiT's pos_embed), maps
 * state_dict names to parameters in one place and checks them.
 */
public abstract class DiffusionModel implements Denoiser {
    protected final LayerRegistry layers = new LayerRegistry();
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();

    public final LayerRegistry layers() { return layers; }

    /** "DiT" or "UNet2DModel" (the config.json _class_name). */
    public abstract String architecture();
    public abstract int inChannels();
    public abstract int outChannels();
    public abstract int sampleSize();
    /** Number of real classes; 0 for unconditional models. Label {@code numClasses()} is the null class. */
    public abstract int numClasses();
    public abstract boolean learnSigma();

    protected final void declareBuffer(String name, Tensor t) { buffers.put(name, t); }
    protected final Tensor buffer(String name) { return buffers.get(name); }

    /** All parameters and buffers by their full state_dict name, in module order. */
    public final Map<String, Tensor> stateDict() { return StateDicts.collect(layers, buffers); }

    public final long parameterCount() {
        long n = 0;
        for (Tensor t : stateDict().values()) n += t.size();
        return n;
    }

    /**
     * Loads tensors by state_dict name. Strict: every model tensor must be present with its exact shape and
     * no unknown names are allowed; errors name the tensors (and the source, e.g. the file). See {@link StateDicts#load}.
     */
    public final void loadStateDict(Map<String, Tensor> sd, String source) {
        StateDicts.load(layers, buffers, sd, source, architecture());
    }
}
