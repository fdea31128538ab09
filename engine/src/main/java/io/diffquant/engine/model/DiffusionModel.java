package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

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
    public final Map<String, Tensor> stateDict() {
        Map<String, Tensor> sd = new LinkedHashMap<>(buffers);
        for (Layer l : layers.all()) for (var e : l.params().entrySet()) sd.put(l.qualified(e.getKey()), e.getValue());
        return sd;
    }

    public final long parameterCount() {
        long n = 0;
        for (Tensor t : stateDict().values()) n += t.size();
        return n;
    }

    /**
     * Loads tensors by state_dict name. Strict: every model tensor must be present with its exact shape and
     * no unknown names are allowed; errors name the tensors (and the source, e.g. the file).
     */
    public final void loadStateDict(Map<String, Tensor> sd, String source) {
        Map<String, Layer> owner = new LinkedHashMap<>();
        Map<String, String> local = new LinkedHashMap<>();
        for (Layer l : layers.all()) for (String p : l.params().keySet()) {
            owner.put(l.qualified(p), l);
            local.put(l.qualified(p), p);
        }
        List<String> missing = new ArrayList<>();
        for (String k : owner.keySet()) if (!sd.containsKey(k)) missing.add(k);
        for (String k : buffers.keySet()) if (!sd.containsKey(k)) missing.add(k);
        TreeSet<String> unexpected = new TreeSet<>();
        for (String k : sd.keySet()) if (!owner.containsKey(k) && !buffers.containsKey(k)) unexpected.add(k);
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new IllegalArgumentException(source + ": state_dict does not match the " + architecture() + " config"
                    + (missing.isEmpty() ? "" : "; missing " + missing.size() + " tensors " + head(missing))
                    + (unexpected.isEmpty() ? "" : "; unexpected " + unexpected.size() + " tensors " + head(new ArrayList<>(unexpected))));
        }
        for (var e : sd.entrySet()) {
            String k = e.getKey();
            Tensor v = e.getValue();
            if (!v.allFinite()) throw new IllegalArgumentException(source + ": tensor '" + k + "' contains NaN or infinite values");
            if (buffers.containsKey(k)) {
                Tensor cur = buffers.get(k);
                if (!cur.sameShape(v)) throw new IllegalArgumentException(source + ": tensor '" + k + "' has shape "
                        + Arrays.toString(v.shape()) + ", the config needs " + Arrays.toString(cur.shape()));
                buffers.put(k, v);
            } else {
                try {
                    owner.get(k).setParam(local.get(k), v);
                } catch (IllegalArgumentException ex) {
                    throw new IllegalArgumentException(source + ": " + ex.getMessage(), ex);
                }
            }
        }
    }

    private static String head(List<String> names) {
        return names.size() <= 6 ? names.toString() : names.subList(0, 6) + " ...";
    }
}
