package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.InputParts;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;

import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * Input-activation fake quantization of one quant point with a straight-through gradient (the round_ste of
 * Xiuyu-Li/q-diffusion's UniformAffineQuantizer): the forward is exactly what {@link QuantizedModel} computes
 * (same parts, parameters and rounding); under a {@link Tape} the backward passes the output gradient through
 * wherever the input lay inside its group's representable range and stops it where the value was clipped (the
 * clamp's zero gradient).
 */
final class SteActQuant {
    private final QuantPoint point;
    private final TensorSpec spec;
    private final Quantizer[] fixed;
    private final NavigableMap<Float, Quantizer[]> perT;
    private final Quantizer[] dynamic;

    private SteActQuant(QuantPoint point, TensorSpec spec, Quantizer[] fixed, NavigableMap<Float, Quantizer[]> perT, Quantizer[] dynamic) {
        this.point = point;
        this.spec = spec;
        this.fixed = fixed;
        this.perT = perT;
        this.dynamic = dynamic;
    }

    /**
     * The quantizer of a point's input, or null when its input is not quantized.
     * @param params calibrated parameters (needed for static / per-timestep inputs)
     * @throws IllegalArgumentException naming the layer when calibrated parameters are missing
     */
    static SteActQuant of(QuantPoint p, TensorSpec spec, InputParams params) {
        if (spec == null || !spec.enabled()) return null;
        int parts = p.inputParts();
        if (spec.mode() == CalibrationMode.DYNAMIC) {
            Quantizer[] d = new Quantizer[parts];
            for (int i = 0; i < parts; i++) d[i] = Quantizer.dynamic(spec.format(), spec.granularity(), Layout.ACTIVATION,
                    spec.range().estimator()).named(p.name() + ".input");
            return new SteActQuant(p, spec, null, null, d);
        }
        if (params == null) throw new IllegalArgumentException("layer '" + p.name() + "': input quantization "
                + spec.describe(TensorSpec.Role.INPUT) + " has no calibrated parameters");
        if (spec.mode() == CalibrationMode.PER_TIMESTEP) {
            if (!params.isPerTimestep()) throw new IllegalArgumentException("layer '" + p.name() + "': the input spec is per timestep, the parameters are shared");
            NavigableMap<Float, Quantizer[]> m = new TreeMap<>();
            for (Map.Entry<Float, ActivationParams> e : params.perTimestep().entrySet()) m.put(e.getKey(), quantizers(p, spec, e.getValue()));
            return new SteActQuant(p, spec, null, m, null);
        }
        if (params.isPerTimestep()) throw new IllegalArgumentException("layer '" + p.name() + "': the input spec is static, the parameters are per timestep");
        return new SteActQuant(p, spec, quantizers(p, spec, params.shared()), null, null);
    }

    private static Quantizer[] quantizers(QuantPoint p, TensorSpec spec, ActivationParams ap) {
        if (ap.size() != p.inputParts()) throw new IllegalArgumentException("layer '" + p.name() + "': input parameters have "
                + ap.size() + " parts, the layer's input has " + p.inputParts());
        Quantizer[] q = new Quantizer[ap.size()];
        for (int i = 0; i < q.length; i++) q[i] = Quantizer.withParams(spec.format(), spec.granularity(), Layout.ACTIVATION, ap.part(i))
                .named(p.name() + ".input");
        return q;
    }

    /** Whether this input needs batches with a single timestep value (per-timestep parameters). */
    boolean perTimestep() { return perT != null; }

    Tensor apply(Tensor x, ForwardContext ctx) {
        Quantizer[] q = dynamic != null ? dynamic : fixed != null ? fixed : lookup(ctx);
        boolean record = Tape.active() != null && Tape.active().needsGrad(x);
        Tensor[] parts = InputParts.split(point, spec.granularity(), x);
        Tensor[] out = new Tensor[parts.length], masks = record ? new Tensor[parts.length] : null;
        for (int i = 0; i < parts.length; i++) {
            Tensor o = Tensor.zeros(parts[i].shape());
            QuantParams used = q[i].fakeQuant(parts[i], o);
            out[i] = o;
            if (record) masks[i] = insideMask(parts[i], q[i], used);
        }
        Tensor y = InputParts.merge(point, spec.granularity(), x, out);
        if (record) {
            float[] mask = InputParts.merge(point, spec.granularity(), x, masks).data();
            Tape.active().record("ste.actQuant", y, (gy, g) -> {
                float[] gx = g.of(x);
                if (gx == null) return;
                Parallel.forRange(gx.length, 1 << 14, (a, b) -> { for (int i = a; i < b; i++) gx[i] += gy[i] * mask[i]; });
            }, x);
        }
        return y;
    }

    private Quantizer[] lookup(ForwardContext ctx) {
        float t = ctx.uniformT();
        if (Float.isNaN(t)) throw new IllegalArgumentException("layer '" + point.name() + "': per-timestep input quantization needs a batch with one timestep value");
        Quantizer[] q = perT.get(t == 0f ? 0f : t);
        if (q == null) throw new IllegalArgumentException("layer '" + point.name() + "': no input parameters for timestep t = "
                + QuantizedModel.timestepLabel(t));
        return q;
    }

    /** 1 where x lies inside its group's representable range [fakeQuant(-max), fakeQuant(+max)], else 0. */
    private static Tensor insideMask(Tensor x, Quantizer q, QuantParams p) {
        GroupView v = q.view(x.shape());
        NumberFormat f = q.format();
        float[] lo = new float[v.groups()], hi = new float[v.groups()];
        for (int g = 0; g < lo.length; g++) {
            lo[g] = f.fakeQuant(-Float.MAX_VALUE, p, g);
            hi[g] = f.fakeQuant(Float.MAX_VALUE, p, g);
        }
        Tensor m = Tensor.zeros(x.shape());
        float[] xd = x.data(), md = m.data();
        int rows = v.rows(), cols = v.cols(), spr = v.segmentsPerRow();
        Parallel.forRange(rows, Math.max(1, (1 << 14) / Math.max(1, cols)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                for (int s = 0; s < spr; s++) {
                    int g = v.group(r, s), off = r * cols + v.segmentStart(s), len = v.segmentLength(s);
                    float l = lo[g], h = hi[g];
                    for (int i = off; i < off + len; i++) md[i] = xd[i] >= l && xd[i] <= h ? 1f : 0f;
                }
            }
        });
        return m;
    }
}
