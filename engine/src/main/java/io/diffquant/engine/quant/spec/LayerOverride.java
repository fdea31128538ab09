package io.diffquant.engine.quant.spec;

/**
 * A per-layer override of a quantization config: layers whose state_dict prefix matches {@code pattern} get the
 * weight and input patches applied. The pattern is a glob ({@code *} any run of characters including dots, {@code ?}
 * one character) matched against the whole layer name or against a dotted prefix of it ({@code blocks.0} covers
 * {@code blocks.0.attn.qkv}). Overrides apply in order; later entries win.
 *
 * @param origin where the override came from, for error messages (a JSON path such as {@code $.overrides[2]},
 *               or {@code --override #1}); not part of the value's identity in configs
 */
public record LayerOverride(String pattern, SpecPatch weight, SpecPatch input, String origin) {
    public LayerOverride {
        if (pattern == null || pattern.isBlank()) throw new IllegalArgumentException("override pattern is empty");
        if (weight == null) weight = SpecPatch.KEEP;
        if (input == null) input = SpecPatch.KEEP;
        if (origin == null) origin = "override '" + pattern + "'";
    }

    public LayerOverride(String pattern, SpecPatch weight, SpecPatch input) { this(pattern, weight, input, null); }

    /**
     * Parses the command-line form {@code GLOB=SPEC}: SPEC is {@code off} (weight and input in full precision) or a
     * comma-separated list of {@code w:FIELDS} / {@code a:FIELDS}, where FIELDS is {@code off} or
     * {@code format/granularity/range/mode} with any trailing fields left out and {@code -} for "keep", e.g.
     * {@code blocks.*.mlp.fc1=w:fp4-e3m0}, {@code final_layer=off}, {@code blocks.0.*=w:int8/channel,a:int8/tensor/lp}.
     */
    public static LayerOverride parse(String text, String origin) {
        String where = origin == null ? "override '" + text + "'" : origin;
        int eq = text == null ? -1 : text.indexOf('=');
        if (eq <= 0) throw new IllegalArgumentException(where + ": expected GLOB=SPEC (e.g. 'final_layer=off' or 'blocks.*.mlp.fc1=w:fp4-e3m0'), got '" + text + "'");
        String glob = text.substring(0, eq).trim(), spec = text.substring(eq + 1).trim();
        if (spec.equalsIgnoreCase("off")) return new LayerOverride(glob, SpecPatch.OFF, SpecPatch.OFF, where);
        SpecPatch w = SpecPatch.KEEP, a = SpecPatch.KEEP;
        for (String part : spec.split(",")) {
            String p = part.trim();
            int c = p.indexOf(':');
            String key = c < 0 ? "" : p.substring(0, c).trim();
            if (!key.equals("w") && !key.equals("a")) throw new IllegalArgumentException(where + ": '" + p
                    + "' must start with w: (weight) or a: (input activation), e.g. w:int4-asym/group128 or a:off");
            SpecPatch patch;
            try {
                patch = patch(p.substring(c + 1).trim());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + key + ": " + e.getMessage(), e);
            }
            if (key.equals("w")) w = patch; else a = patch;
        }
        return new LayerOverride(glob, w, a, where);
    }

    private static SpecPatch patch(String fields) {
        if (fields.equalsIgnoreCase("off")) return SpecPatch.OFF;
        if (fields.equalsIgnoreCase("on")) return new SpecPatch(true, null, null, null, null);
        String[] f = fields.split("/", -1);
        if (f.length > 4) throw new IllegalArgumentException("at most format/granularity/range/mode, got '" + fields + "'");
        io.diffquant.engine.quant.format.NumberFormat format = f.length > 0 && !keep(f[0]) ? io.diffquant.engine.quant.format.NumberFormat.parse(f[0].trim()) : null;
        io.diffquant.engine.quant.format.Granularity g = f.length > 1 && !keep(f[1]) ? io.diffquant.engine.quant.format.Granularity.parse(f[1].trim()) : null;
        RangeSpec r = f.length > 2 && !keep(f[2]) ? RangeSpec.parse(f[2].trim()) : null;
        CalibrationMode m = f.length > 3 && !keep(f[3]) ? CalibrationMode.parse(f[3].trim()) : null;
        return new SpecPatch(null, format, g, r, m);
    }

    private static boolean keep(String s) { return s.isBlank() || s.trim().equals("-"); }

    /** Turns a layer (weight and input) to full precision. */
    public static LayerOverride fullPrecision(String pattern) { return new LayerOverride(pattern, SpecPatch.OFF, SpecPatch.OFF); }

    public SpecPatch get(TensorSpec.Role role) { return role == TensorSpec.Role.WEIGHT ? weight : input; }

    public LayerOverride withOrigin(String o) { return new LayerOverride(pattern, weight, input, o); }

    /** Equality ignores the origin. */
    @Override public boolean equals(Object o) {
        return o instanceof LayerOverride l && l.pattern.equals(pattern) && l.weight.equals(weight) && l.input.equals(input);
    }

    @Override public int hashCode() { return java.util.Objects.hash(pattern, weight, input); }
}
