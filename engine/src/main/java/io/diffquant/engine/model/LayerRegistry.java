package io.diffquant.engine.model;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/** Every layer of a model by its state_dict prefix, in module-tree order. */
public final class LayerRegistry {
    private final Map<String, Layer> layers = new LinkedHashMap<>();

    public <L extends Layer> L add(L layer) {
        if (layers.putIfAbsent(layer.name(), layer) != null)
            throw new IllegalStateException("duplicate layer name " + layer.name());
        return layer;
    }

    public Layer get(String name) {
        Layer l = layers.get(name);
        if (l == null) throw new IllegalArgumentException("no layer named '" + name + "' in this model");
        return l;
    }

    public boolean contains(String name) { return layers.containsKey(name); }

    public Collection<Layer> all() { return Collections.unmodifiableCollection(layers.values()); }

    public List<Layer> ofKind(LayerKind... kinds) {
        List<Layer> r = new ArrayList<>();
        for (Layer l : layers.values()) for (LayerKind k : kinds) if (l.kind() == k) { r.add(l); break; }
        return r;
    }

    /** Layers whose name matches a glob ({@code *} = any run of characters, {@code ?} = one). */
    public List<Layer> match(String glob) {
        Pattern p = globToRegex(glob);
        List<Layer> r = new ArrayList<>();
        for (Layer l : layers.values()) if (p.matcher(l.name()).matches()) r.add(l);
        return r;
    }

    public static Pattern globToRegex(String glob) {
        StringBuilder sb = new StringBuilder();
        for (char c : glob.toCharArray()) {
            switch (c) {
                case '*' -> sb.append(".*");
                case '?' -> sb.append('.');
                default -> sb.append(Pattern.quote(String.valueOf(c)));
            }
        }
        return Pattern.compile(sb.toString());
    }

    public void clearAllHooks() { layers.values().forEach(Layer::clearHooks); }

    public int size() { return layers.size(); }
}
