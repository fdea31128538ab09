package io.diffquant.engine.quant.format;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which elements share quantization parameters (ALGORITHMS.md §4; Q-DiT's per-group, FP4DiT's per-token,
 * OCP MX's per-block). Every granularity acts on the [rows, cols] view of a tensor given by its {@link Layout};
 * {@link GroupView} maps elements to group indices.
 *
 * <p>Canonical names ({@link #id()}, accepted by {@link #parse(String)}): {@code tensor}, {@code channel},
 * {@code token}, {@code group<g>}, {@code head<h>}, {@code block<b>}.
 */
public sealed interface Granularity {

    /** Canonical name, parseable back with {@link #parse(String)}. */
    String id();

    /** One parameter set for the whole tensor. */
    record PerTensor() implements Granularity {
        @Override public String id() { return "tensor"; }
    }

    /**
     * One parameter set per channel: per output channel (row) in the {@link Layout#WEIGHT} view, per channel
     * (column, the last dim C) in the {@link Layout#ACTIVATION} view.
     */
    record PerChannel() implements Granularity {
        @Override public String id() { return "channel"; }
    }

    /**
     * Q-DiT groups: g consecutive columns of each row share a parameter set (for a weight [out, in] that is
     * g consecutive input channels of one output row; for conv weights the columns are in*kh*kw flattened).
     * If g does not divide the row length, the last group of every row is shorter.
     */
    record PerGroup(int size) implements Granularity {
        public PerGroup {
            if (size < 1) throw new IllegalArgumentException("group size must be >= 1, got " + size);
        }
        @Override public String id() { return "group" + size; }
    }

    /** One parameter set per row of the view: per token for activations [..., C] (computed online). */
    record PerToken() implements Granularity {
        @Override public String id() { return "token"; }
    }

    /**
     * The columns (channel dim) split into {@code heads} contiguous parts of head_dim = cols / heads; one
     * parameter set per head, shared by all rows.
     */
    record PerHead(int heads) implements Granularity {
        public PerHead {
            if (heads < 1) throw new IllegalArgumentException("number of heads must be >= 1, got " + heads);
        }
        @Override public String id() { return "head" + heads; }
    }

    /**
     * Blocks of {@code size} consecutive elements along the columns of each row, for block formats (OCP MX: 32,
     * NVFP4: 16); a shorter last block when size does not divide the row (the spec's padding, without storing it).
     */
    record PerBlock(int size) implements Granularity {
        public PerBlock {
            if (size < 1) throw new IllegalArgumentException("block size must be >= 1, got " + size);
        }
        @Override public String id() { return "block" + size; }
    }

    Granularity TENSOR = new PerTensor();
    Granularity CHANNEL = new PerChannel();
    Granularity TOKEN = new PerToken();

    static Granularity group(int size) { return new PerGroup(size); }
    static Granularity head(int heads) { return new PerHead(heads); }
    static Granularity block(int size) { return new PerBlock(size); }

    /** Parses a canonical name ({@code tensor, channel, token, group<g>, head<h>, block<b>}). */
    static Granularity parse(String name) {
        if (name == null) throw new IllegalArgumentException("granularity name is null");
        String s = name.trim().toLowerCase(java.util.Locale.ROOT);
        switch (s) {
            case "tensor": return TENSOR;
            case "channel": return CHANNEL;
            case "token": return TOKEN;
            default: break;
        }
        Matcher m = Pattern.compile("(group|head|block)(\\d{1,9})").matcher(s);
        if (m.matches()) {
            int n = Integer.parseInt(m.group(2));
            return switch (m.group(1)) {
                case "group" -> new PerGroup(n);
                case "head" -> new PerHead(n);
                default -> new PerBlock(n);
            };
        }
        throw new IllegalArgumentException("unknown granularity '" + name
                + "'; valid: tensor, channel, token, group<g> (e.g. group128), head<h> (e.g. head6), block<b> (e.g. block32)");
    }
}
