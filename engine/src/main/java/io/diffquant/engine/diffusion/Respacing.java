package io.diffquant.engine.diffusion;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

/**
 * Timestep respacing with ADM's {@code space_timesteps} semantics (openai/improved-diffusion respace.py, as used by
 * facebookresearch/DiT diffusion/respace.py): "ddimN" = the smallest integer stride s in [1, T) with
 * |range(0, T, s)| = N; otherwise comma-separated per-section counts over T split into equal sections.
 */
public final class Respacing {
    private Respacing() {}

    /**
     * The sorted ORIGINAL timesteps kept by {@code spec} out of {@code numTimesteps}. A null or blank spec keeps all
     * timesteps (as DiT's create_diffusion).
     *
     * @throws IllegalArgumentException for a malformed spec, a count that cannot be met, or N with no exact stride
     */
    public static int[] spaceTimesteps(int numTimesteps, String spec) {
        if (numTimesteps < 1) throw new IllegalArgumentException("respacing: number of diffusion timesteps must be >= 1, got "
                + numTimesteps);
        if (spec == null || spec.isBlank()) return range(0, numTimesteps, 1);
        String s = spec.trim();
        if (s.startsWith("ddim")) {
            int desired = parseCount(s.substring(4), spec);
            if (desired < 1) throw new IllegalArgumentException("respacing '" + spec + "': step count must be >= 1");
            // ADM tries strides 1 .. T-1 in order and keeps the first giving exactly the desired count.
            for (int stride = 1; stride < numTimesteps; stride++) {
                if (ceilDiv(numTimesteps, stride) == desired) return range(0, numTimesteps, stride);
            }
            throw new IllegalArgumentException("respacing '" + spec + "': cannot create exactly " + desired
                    + " steps out of " + numTimesteps + " with an integer stride");
        }
        String[] parts = s.split(",", -1);
        int[] counts = new int[parts.length];
        for (int i = 0; i < parts.length; i++) counts[i] = parseCount(parts[i], spec);
        return sections(numTimesteps, counts, spec);
    }

    /** ADM's section spacing for explicit per-section counts. */
    public static int[] spaceTimesteps(int numTimesteps, int... sectionCounts) {
        if (numTimesteps < 1) throw new IllegalArgumentException("respacing: number of diffusion timesteps must be >= 1, got "
                + numTimesteps);
        if (sectionCounts == null || sectionCounts.length == 0) throw new IllegalArgumentException(
                "respacing: at least one section count is needed");
        return sections(numTimesteps, sectionCounts, java.util.Arrays.toString(sectionCounts));
    }

    /** Respaces {@code base} with {@code spec} (null/blank = all timesteps). */
    public static RespacedSchedule respace(NoiseSchedule base, String spec) {
        return RespacedSchedule.of(base, spaceTimesteps(base.numTimesteps(), spec), spec == null ? "" : spec.trim());
    }

    private static int[] sections(int numTimesteps, int[] counts, String spec) {
        for (int c : counts) if (c < 0) throw new IllegalArgumentException("respacing '" + spec
                + "': section counts must be >= 0, got " + c);
        int sizePer = numTimesteps / counts.length;
        int extra = numTimesteps % counts.length;
        int startIdx = 0;
        TreeSet<Integer> all = new TreeSet<>();
        for (int i = 0; i < counts.length; i++) {
            int size = sizePer + (i < extra ? 1 : 0);
            int count = counts[i];
            if (size < count) throw new IllegalArgumentException("respacing '" + spec + "': cannot divide section "
                    + i + " of " + size + " steps into " + count);
            double fracStride = count <= 1 ? 1 : (double) (size - 1) / (count - 1);
            double cur = 0.0;
            for (int k = 0; k < count; k++) {
                all.add(startIdx + (int) Math.rint(cur)); // Python's round(): half to even
                cur += fracStride;
            }
            startIdx += size;
        }
        if (all.isEmpty()) throw new IllegalArgumentException("respacing '" + spec + "': keeps no timestep");
        int[] out = new int[all.size()];
        int j = 0;
        for (int v : all) out[j++] = v;
        return out;
    }

    private static int parseCount(String text, String spec) {
        String t = text.trim();
        try {
            return Integer.parseInt(t);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("respacing '" + spec + "': '" + t + "' is not an integer step count; "
                    + "expected \"ddimN\" or comma-separated section counts such as \"250\" or \"10,15,20\"");
        }
    }

    private static int ceilDiv(int a, int b) { return (a + b - 1) / b; }

    private static int[] range(int from, int to, int step) {
        List<Integer> l = new ArrayList<>();
        for (int v = from; v < to; v += step) l.add(v);
        int[] out = new int[l.size()];
        for (int i = 0; i < out.length; i++) out[i] = l.get(i);
        return out;
    }
}
