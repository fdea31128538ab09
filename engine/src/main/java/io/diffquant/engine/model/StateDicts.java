package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * PyTorch-style state_dicts of a {@link LayerRegistry} plus model-level buffers: listing by full name and strict
 * loading (as {@code load_state_dict(strict=True)}, with the shape check of {@code _load_from_state_dict}).
 * Shared by {@link DiffusionModel} and the models that are not denoisers (e.g. the VAE).
 */
public final class StateDicts {
    private StateDicts() {}

    /** All parameters and buffers by their full state_dict name: buffers first, then layers in registry order. */
    public static Map<String, Tensor> collect(LayerRegistry layers, Map<String, Tensor> buffers) {
        Map<String, Tensor> sd = new LinkedHashMap<>(buffers);
        for (Layer l : layers.all()) for (var e : l.params().entrySet()) sd.put(l.qualified(e.getKey()), e.getValue());
        return sd;
    }

    /**
     * Loads tensors by state_dict name. Strict: every model tensor must be present with its exact shape, no unknown
     * names are allowed and all values must be finite; errors name the tensors and {@code source} (e.g. the file).
     * Nothing is modified unless every name, shape and value passes; {@code buffers} entries are replaced in place.
     *
     * @param architecture what the config describes, for the message (e.g. "DiT", "AutoencoderKL")
     */
    public static void load(LayerRegistry layers, Map<String, Tensor> buffers, Map<String, Tensor> sd, String source,
                            String architecture) {
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
            throw new IllegalArgumentException(source + ": state_dict does not match the " + architecture + " config"
                    + (missing.isEmpty() ? "" : "; missing " + missing.size() + " tensors " + head(missing))
                    + (unexpected.isEmpty() ? "" : "; unexpected " + unexpected.size() + " tensors " + head(new ArrayList<>(unexpected))));
        }
        // validate everything first, so that a bad file leaves the model unchanged
        for (var e : sd.entrySet()) {
            String k = e.getKey();
            Tensor v = e.getValue();
            Tensor cur = buffers.containsKey(k) ? buffers.get(k) : owner.get(k).param(local.get(k));
            if (!cur.sameShape(v)) throw new IllegalArgumentException(source + ": tensor '" + k + "' has shape "
                    + Arrays.toString(v.shape()) + ", the config needs " + Arrays.toString(cur.shape()));
            if (!v.allFinite()) throw new IllegalArgumentException(source + ": tensor '" + k + "' contains NaN or infinite values");
        }
        for (var e : sd.entrySet()) {
            String k = e.getKey();
            if (buffers.containsKey(k)) buffers.put(k, e.getValue());
            else owner.get(k).setParam(local.get(k), e.getValue());
        }
    }

    private static String head(List<String> names) {
        return names.size() <= 6 ? names.toString() : names.subList(0, 6) + " ...";
    }
}
