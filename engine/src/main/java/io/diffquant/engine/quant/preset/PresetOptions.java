package io.diffquant.engine.quant.preset;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The options of a method preset, typed and complete: every option the preset declares, with its default where not
 * given, in declaration order. Built by {@link #resolve}, which rejects unknown options and badly typed values.
 */
public final class PresetOptions {
    private final Map<String, Object> values;

    private PresetOptions(Map<String, Object> values) { this.values = Collections.unmodifiableMap(values); }

    /**
     * Validates given values against a preset's declarations and fills defaults.
     * @throws UnknownOptionException for a name the preset does not declare
     * @throws IllegalArgumentException ("option 'x': ...") for a bad value
     */
    public static PresetOptions resolve(Preset preset, Map<String, ?> given) {
        Map<String, OptionDef> defs = new LinkedHashMap<>();
        for (OptionDef d : preset.options()) defs.put(d.name(), d);
        if (given != null) for (String k : given.keySet()) {
            if (!defs.containsKey(k)) throw new UnknownOptionException(k, "unknown option \"" + k + "\" for preset \"" + preset.name()
                    + "\"; valid: " + String.join(", ", defs.keySet()));
        }
        Map<String, Object> v = new LinkedHashMap<>();
        for (OptionDef d : defs.values()) {
            Object x = given == null ? null : given.get(d.name());
            if (x != null) v.put(d.name(), d.coerce(x));
            else if (d.defaultValue() != null) v.put(d.name(), d.defaultValue());
        }
        return new PresetOptions(v);
    }

    /** Thrown for an option name the preset does not know. */
    public static final class UnknownOptionException extends IllegalArgumentException {
        private final String option;
        public UnknownOptionException(String option, String message) { super(message); this.option = option; }
        public String option() { return option; }
    }

    public Map<String, Object> values() { return values; }
    public boolean has(String name) { return values.containsKey(name); }

    public int getInt(String name) { return (Integer) require(name); }
    public double getDouble(String name) { return (Double) require(name); }
    public String getString(String name) { return (String) require(name); }
    public boolean getBoolean(String name) { return (Boolean) require(name); }
    /** The string option, or null when absent. */
    public String optString(String name) { return (String) values.get(name); }

    private Object require(String name) {
        Object v = values.get(name);
        if (v == null) throw new IllegalArgumentException("option '" + name + "' is not set");
        return v;
    }

    @Override public boolean equals(Object o) { return o instanceof PresetOptions p && p.values.equals(values); }
    @Override public int hashCode() { return values.hashCode(); }
    @Override public String toString() { return values.toString(); }
}
