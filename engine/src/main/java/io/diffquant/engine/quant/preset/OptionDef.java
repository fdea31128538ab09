package io.diffquant.engine.quant.preset;

import java.util.List;

/**
 * One option a method preset accepts: name, type, default (null = none, the option is then absent unless given),
 * allowed values for strings (empty = any) and a one-line description for help texts and docs.
 */
public record OptionDef(String name, Type type, Object defaultValue, List<String> choices, String description) {
    public enum Type { INT, DOUBLE, STRING, BOOLEAN }

    public OptionDef {
        if (name == null || type == null) throw new IllegalArgumentException("option needs a name and a type");
        choices = choices == null ? List.of() : List.copyOf(choices);
        if (defaultValue != null) defaultValue = coerce(name, type, defaultValue, choices);
    }

    public static OptionDef integer(String name, Integer def, String description) { return new OptionDef(name, Type.INT, def, null, description); }
    public static OptionDef real(String name, Double def, String description) { return new OptionDef(name, Type.DOUBLE, def, null, description); }
    public static OptionDef string(String name, String def, String description) { return new OptionDef(name, Type.STRING, def, null, description); }
    public static OptionDef choice(String name, String def, List<String> choices, String description) { return new OptionDef(name, Type.STRING, def, choices, description); }
    public static OptionDef bool(String name, Boolean def, String description) { return new OptionDef(name, Type.BOOLEAN, def, null, description); }

    /** The value as this option's Java type (Integer, Double, String, Boolean); strings are parsed. */
    public Object coerce(Object v) { return coerce(name, type, v, choices); }

    private static Object coerce(String name, Type type, Object v, List<String> choices) {
        if (v == null) throw new IllegalArgumentException("option '" + name + "' has no value");
        try {
            Object out = switch (type) {
                case INT -> {
                    if (v instanceof Integer i) yield i;
                    if (v instanceof Long l && l == l.intValue()) yield l.intValue();
                    if (v instanceof Double d && d == Math.rint(d) && Math.abs(d) < Integer.MAX_VALUE) yield d.intValue();
                    if (v instanceof String s) yield Integer.parseInt(s.trim());
                    throw new IllegalArgumentException("expected an integer, got " + v);
                }
                case DOUBLE -> {
                    if (v instanceof Number n) yield n.doubleValue();
                    if (v instanceof String s) yield Double.parseDouble(s.trim());
                    throw new IllegalArgumentException("expected a number, got " + v);
                }
                case BOOLEAN -> {
                    if (v instanceof Boolean b) yield b;
                    if (v instanceof String s && (s.equalsIgnoreCase("true") || s.equalsIgnoreCase("false"))) yield Boolean.parseBoolean(s);
                    throw new IllegalArgumentException("expected true or false, got " + v);
                }
                case STRING -> {
                    if (v instanceof String s) yield s;
                    throw new IllegalArgumentException("expected a string, got " + v);
                }
            };
            if (type == Type.STRING && !choices.isEmpty() && !choices.contains(out))
                throw new IllegalArgumentException("expected one of " + String.join(", ", choices) + ", got \"" + out + "\"");
            return out;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("option '" + name + "': expected " + (type == Type.INT ? "an integer" : "a number") + ", got \"" + v + "\"");
        } catch (IllegalArgumentException e) {
            if (e.getMessage() != null && e.getMessage().startsWith("option '")) throw e;
            throw new IllegalArgumentException("option '" + name + "': " + e.getMessage());
        }
    }

    /** e.g. "w_bits (int, default 4): weight bits". */
    public String help() {
        return name + " (" + type.name().toLowerCase() + (choices.isEmpty() ? "" : ": " + String.join("|", choices))
                + (defaultValue == null ? "" : ", default " + defaultValue) + "): " + description;
    }
}
