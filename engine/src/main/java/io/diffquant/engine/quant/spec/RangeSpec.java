package io.diffquant.engine.quant.spec;

import io.diffquant.engine.quant.format.RangeEstimator;

import java.math.BigDecimal;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a quantizer's range is found (ALGORITHMS.md §4; Q-Diffusion / TFMQ-DM quant_layer.py): min-max, an EMA of
 * per-batch min/max (activations only), percentile clipping, or Lp-norm search (p = 2.4). Ids:
 * {@code minmax}, {@code ema} (= {@code ema0.95}), {@code ema<m>}, {@code percentile<p>}, {@code lp}
 * (= {@code lp2.4x80s0.01}, TFMQ/Q-Diffusion), {@code lp-qdit} (= {@code lp2.4x100s0.001}) and the explicit
 * {@code lp<p>x<steps>s<fraction>}. {@link #id()} is the canonical spelling.
 */
public record RangeSpec(Kind kind, double momentum, RangeEstimator estimator) {

    public enum Kind { MINMAX, EMA, PERCENTILE, LP }

    public static final RangeSpec MINMAX = new RangeSpec(Kind.MINMAX, 0, RangeEstimator.minMax());
    public static final RangeSpec EMA = ema(0.95);
    public static final RangeSpec LP = new RangeSpec(Kind.LP, 0, RangeEstimator.lpSearch());
    public static final RangeSpec LP_QDIT = new RangeSpec(Kind.LP, 0, RangeEstimator.lpSearchQDiT());

    public RangeSpec {
        if (kind == null) throw new IllegalArgumentException("range kind is null");
        if (kind == Kind.EMA && !(momentum >= 0 && momentum < 1))
            throw new IllegalArgumentException("EMA momentum must be in [0, 1), got " + momentum);
        if (kind != Kind.EMA && estimator == null) throw new IllegalArgumentException("range " + kind + " needs an estimator");
        if (kind == Kind.EMA) estimator = RangeEstimator.minMax();
    }

    public static RangeSpec ema(double momentum) { return new RangeSpec(Kind.EMA, momentum, null); }
    public static RangeSpec percentile(double p) { return new RangeSpec(Kind.PERCENTILE, 0, RangeEstimator.percentile(p)); }

    /** Canonical id. */
    public String id() {
        return kind == Kind.EMA ? "ema" + plain(momentum) : estimator.id();
    }

    /**
     * Whether calibration can fold batches one at a time (min-max, EMA); percentile and Lp search need the
     * samples themselves (a bounded reservoir per quantizer).
     */
    public boolean streaming() { return kind == Kind.MINMAX || kind == Kind.EMA; }

    private static final Pattern EMA_ID = Pattern.compile("ema(\\d*\\.?\\d+)?");
    private static final Pattern PCT_ID = Pattern.compile("percentile(\\d+(?:\\.\\d+)?)");
    private static final Pattern LP_ID = Pattern.compile("lp(\\d+(?:\\.\\d+)?)x(\\d{1,6})s(\\d*\\.?\\d+(?:e-?\\d+)?)");

    /** The valid spellings, for error messages. */
    public static String validNames() {
        return "minmax, ema (= ema0.95), ema<momentum>, percentile<p> (e.g. percentile99.99), lp (= lp2.4x80s0.01), "
                + "lp-qdit (= lp2.4x100s0.001), lp<p>x<steps>s<fraction>";
    }

    /** Parses an id; errors list the valid spellings. */
    public static RangeSpec parse(String s) {
        if (s == null) throw new IllegalArgumentException("range is null; valid: " + validNames());
        String v = s.trim().toLowerCase(Locale.ROOT);
        try {
            switch (v) {
                case "minmax": return MINMAX;
                case "lp": return LP;
                case "lp-qdit": return LP_QDIT;
                default: break;
            }
            Matcher m = EMA_ID.matcher(v);
            if (m.matches()) return m.group(1) == null ? EMA : ema(Double.parseDouble(m.group(1)));
            m = PCT_ID.matcher(v);
            if (m.matches()) return percentile(Double.parseDouble(m.group(1)));
            m = LP_ID.matcher(v);
            if (m.matches()) return new RangeSpec(Kind.LP, 0, new RangeEstimator.LpSearch(Double.parseDouble(m.group(1)),
                    Integer.parseInt(m.group(2)), Double.parseDouble(m.group(3))));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("range '" + s + "': " + e.getMessage(), e);
        }
        throw new IllegalArgumentException("unknown range '" + s + "'; valid: " + validNames());
    }

    private static String plain(double v) { return BigDecimal.valueOf(v).stripTrailingZeros().toPlainString(); }

    @Override public String toString() { return id(); }
}
