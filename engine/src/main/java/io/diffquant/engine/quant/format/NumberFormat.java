package io.diffquant.engine.quant.format;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A number format a tensor can be quantized to (ALGORITHMS.md §3): uniform integers, FP4DiT-style ExMy floats
 * with a real-valued bias, OCP FP8 with a scale, and block formats (OCP MX v1.0, NVFP4). Shared by the whole
 * product: configs name formats by {@link #id()} and read them back with {@link #parse(String)}.
 *
 * <p>Codes are unsigned integers below 2^{@link #codeBits()} (two's complement bit patterns for signed
 * integers, sign-magnitude for floats). Parameters come per group ({@link QuantParams}); the {@code group}
 * argument of every method selects one. Rounding everywhere is to nearest with ties to even (like torch.round),
 * decided on the exact real quotient: the divisions are done in double precision, where the exact quotient of
 * two floats can never round onto a tie it is not on, so results do not depend on float32 rounding of x / scale.
 *
 * <p>Non-finite input: {@link #fakeQuant(float, QuantParams, int)} maps NaN to NaN and saturates ±infinity
 * (OCP FP8 without saturation gives its NaN/infinity); {@link #encode(float, QuantParams, int)} of NaN throws
 * for formats without a NaN code. Callers reject NaN weights by name with {@link QuantChecks#requireFinite}.
 */
public sealed interface NumberFormat permits IntFormat, FpFormat, OcpFp8, BlockFormat {

    /** Canonical name, e.g. {@code int4-asym}, {@code fp4-e2m1}, {@code ocp-fp8-e4m3}, {@code mxfp4}, {@code nvfp4}. */
    String id();

    /** Bits of one element code. */
    int codeBits();

    /** Whether negative values are representable. */
    boolean signed();

    /** Bits of the per-group parameters (scale, zero point) as stored: FP32 scales, E8M0/E4M3 block scales. */
    int overheadBitsPerGroup();

    /** Bits stored once per tensor (NVFP4's FP32 tensor scale), 0 for the others. */
    default int overheadBitsPerTensor() { return 0; }

    /** Average bits per element, ALGORITHMS.md §3: (codeBits · elements + overhead) / elements. */
    default double averageBits(long elements, long groups) {
        if (elements <= 0) throw new IllegalArgumentException("average bits need at least one element, got " + elements);
        return ((double) codeBits() * elements + (double) overheadBitsPerGroup() * groups + overheadBitsPerTensor()) / elements;
    }

    /** Average bits per element of a tensor of this shape quantized with this granularity. */
    default double averageBits(int[] shape, Layout layout, Granularity g) {
        GroupView v = new GroupView(g, layout, shape);
        return averageBits(v.size(), v.groups());
    }

    /**
     * Average bits per element when the group count follows from the element count alone: per tensor (1 group)
     * or groups/blocks of n (ceil(elements / n) groups, exact when n divides the row length). Per-channel, per-token
     * and per-head counts need the shape: use {@link #averageBits(int[], Layout, Granularity)}.
     */
    default double averageBits(int elements, Granularity g) {
        long groups = switch (g) {
            case Granularity.PerTensor t -> 1;
            case Granularity.PerGroup pg -> (elements + (long) pg.size() - 1) / pg.size();
            case Granularity.PerBlock pb -> (elements + (long) pb.size() - 1) / pb.size();
            default -> throw new IllegalArgumentException("granularity " + g.id()
                    + ": the number of groups depends on the tensor shape; use averageBits(shape, layout, granularity)");
        };
        return averageBits(elements, groups);
    }

    /** Throws if the format cannot be used with this granularity (block formats need their block size). */
    default void checkGranularity(Granularity g) { }

    /** Throws if the parameters do not suit the format (e.g. asymmetric integers without zero points). */
    default void checkParams(QuantParams p) { }

    /**
     * Parameters for per-group ranges [lo[g], hi[g]] (what a {@link RangeEstimator} found): INT steps and zero
     * points, FP maxval = max(|lo|, |hi|), FP8 scale = absmax / max finite, block scales from the block absmax.
     */
    QuantParams paramsForRange(float[] lo, float[] hi);

    /** Sorted distinct representable values of one group (-0 and +0 count once). */
    float[] grid(QuantParams p, int group);

    /** {@link #grid(QuantParams, int)} of single-group parameters. */
    default float[] grid(QuantParams p) {
        if (p.groups() != 1) throw new IllegalArgumentException(id() + ": grid(p) needs single-group parameters, got "
                + p.groups() + " groups; use grid(p, group)");
        return grid(p, 0);
    }

    /** Code of the value nearest to x (ties to even). */
    int encode(float x, QuantParams p, int group);

    /** Value of a code. */
    float decode(int code, QuantParams p, int group);

    /** decode(encode(x)), with NaN propagated instead of rejected. */
    float fakeQuant(float x, QuantParams p, int group);

    /** Quantize-dequantize src[srcOff, srcOff+len) with one group's parameters into dst (may alias src). */
    default void fakeQuant(float[] src, int srcOff, float[] dst, int dstOff, int len, QuantParams p, int group) {
        for (int i = 0; i < len; i++) dst[dstOff + i] = fakeQuant(src[srcOff + i], p, group);
    }

    /** Codes of src[srcOff, srcOff+len) into codes[codeOff...] (as unsigned bytes). */
    default void encode(float[] src, int srcOff, byte[] codes, int codeOff, int len, QuantParams p, int group) {
        for (int i = 0; i < len; i++) codes[codeOff + i] = (byte) encode(src[srcOff + i], p, group);
    }

    /** Values of codes[codeOff, codeOff+len) into dst. */
    default void decode(byte[] codes, int codeOff, float[] dst, int dstOff, int len, QuantParams p, int group) {
        for (int i = 0; i < len; i++) dst[dstOff + i] = decode(codes[codeOff + i] & 0xFF, p, group);
    }

    /** Whether NaN has a code (only OCP FP8). */
    default boolean encodesNaN() { return false; }

    // ------------------------------------------------------------------ names

    /** The fixed names and the name patterns {@link #parse(String)} accepts, for error messages and help. */
    static String validNames() {
        return "int<b>-asym, int<b>-sym, int<b>-sym-full, uint<b> (b = 2..8; int<b> = int<b>-asym), "
                + "fp<n>-e<E>m<M> (n = 1+E+M <= 8, e.g. fp4-e2m1, fp4-e3m0, fp6-e3m2, fp8-e4m3), "
                + "ufp<n>-e<E>m<M> (unsigned, n = E+M <= 8, e.g. ufp4-e3m1), "
                + "ocp-fp8-e4m3, ocp-fp8-e5m2 (add -nosat for non-saturating), "
                + "mxfp4, mxfp6-e2m3, mxfp6-e3m2, mxfp8-e4m3, mxfp8-e5m2, mxint8, nvfp4";
    }

    /** Every name {@link #parse(String)} accepts, canonical spelling. */
    static List<String> allNames() {
        List<String> out = new ArrayList<>();
        for (int b = IntFormat.MIN_BITS; b <= IntFormat.MAX_BITS; b++) {
            for (IntFormat.Kind k : IntFormat.Kind.values()) out.add(new IntFormat(b, k).id());
        }
        for (int e = 0; e <= 7; e++) {
            for (int m = 0; 1 + e + m <= 8; m++) if (e + m >= 1) out.add(new FpFormat(e, m, true).id());
        }
        for (int e = 0; e <= 8; e++) {
            for (int m = 0; e + m <= 8; m++) if (e + m >= 1) out.add(new FpFormat(e, m, false).id());
        }
        for (OcpFp8 f : new OcpFp8[] {OcpFp8.E4M3, OcpFp8.E5M2, OcpFp8.E4M3_NOSAT, OcpFp8.E5M2_NOSAT}) out.add(f.id());
        for (BlockFormat f : BlockFormat.ALL) out.add(f.id());
        return out;
    }

    /** Reads a format name (case-insensitive); unknown names get a message listing the valid ones. */
    static NumberFormat parse(String name) {
        if (name == null) throw new IllegalArgumentException("number format name is null; valid names: " + validNames());
        String s = name.trim().toLowerCase(Locale.ROOT);
        Matcher m = Pattern.compile("int(\\d)(?:-(asym|sym|sym-full))?").matcher(s);
        if (m.matches()) {
            int bits = Integer.parseInt(m.group(1));
            IntFormat.Kind k = m.group(2) == null ? IntFormat.Kind.ASYMMETRIC : switch (m.group(2)) {
                case "asym" -> IntFormat.Kind.ASYMMETRIC;
                case "sym" -> IntFormat.Kind.SYMMETRIC;
                default -> IntFormat.Kind.SYMMETRIC_FULL;
            };
            return checkedInt(name, bits, k);
        }
        m = Pattern.compile("uint(\\d)").matcher(s);
        if (m.matches()) return checkedInt(name, Integer.parseInt(m.group(1)), IntFormat.Kind.UNSIGNED);
        m = Pattern.compile("(u?)fp(\\d)-e(\\d)m(\\d)").matcher(s);
        if (m.matches()) {
            boolean signed = m.group(1).isEmpty();
            int n = Integer.parseInt(m.group(2)), e = Integer.parseInt(m.group(3)), mm = Integer.parseInt(m.group(4));
            int need = (signed ? 1 : 0) + e + mm;
            if (n != need || n > 8 || e + mm < 1) throw new IllegalArgumentException("number format '" + name + "': "
                    + (n != need ? (signed ? "1 sign + " : "") + e + " exponent + " + mm + " mantissa bits make " + need + ", not " + n
                    : "needs 1 <= E + M and " + (signed ? "1 + " : "") + "E + M <= 8")
                    + "; valid names: " + validNames());
            return new FpFormat(e, mm, signed);
        }
        switch (s) {
            case "ocp-fp8-e4m3": return OcpFp8.E4M3;
            case "ocp-fp8-e5m2": return OcpFp8.E5M2;
            case "ocp-fp8-e4m3-nosat": return OcpFp8.E4M3_NOSAT;
            case "ocp-fp8-e5m2-nosat": return OcpFp8.E5M2_NOSAT;
            default: break;
        }
        for (BlockFormat f : BlockFormat.ALL) if (f.id().equals(s)) return f;
        throw new IllegalArgumentException("unknown number format '" + name + "'; valid names: " + validNames());
    }

    private static IntFormat checkedInt(String name, int bits, IntFormat.Kind k) {
        if (bits < IntFormat.MIN_BITS || bits > IntFormat.MAX_BITS) throw new IllegalArgumentException("number format '" + name
                + "': integer formats have " + IntFormat.MIN_BITS + " to " + IntFormat.MAX_BITS + " bits; valid names: " + validNames());
        return new IntFormat(bits, k);
    }
}
