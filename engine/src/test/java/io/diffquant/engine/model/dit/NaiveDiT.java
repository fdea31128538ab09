package io.diffquant.engine.model.dit;

import io.diffquant.engine.tensor.Tensor;

import java.util.Map;

/**
 * A deliberately naive double-precision DiT forward written straight from facebookresearch/DiT models.py
 * (and timm's PatchEmbed / Attention / Mlp): plain loops over a state_dict, no shared code with the engine.
 * Only the timestep frequencies and arguments are formed in float32, because the reference does that.
 */
final class NaiveDiT {
    private final DiTConfig cfg;
    private final Map<String, Tensor> sd;

    NaiveDiT(DiTConfig cfg, Map<String, Tensor> sd) {
        this.cfg = cfg;
        this.sd = sd;
    }

    private float[] p(String name) {
        Tensor t = sd.get(name);
        if (t == null) throw new AssertionError("missing " + name);
        return t.data();
    }

    /** y = W x + b for one vector; W [out, in]. */
    private double[] linear(String name, double[] x) {
        float[] w = p(name + ".weight"), b = p(name + ".bias");
        int out = b.length, in = x.length;
        if (w.length != out * in) throw new AssertionError(name + " shape");
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int i = 0; i < in; i++) s += (double) w[o * in + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    private static double[] silu(double[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = x[i] / (1 + Math.exp(-x[i]));
        return y;
    }

    private static double[] layerNorm(double[] x) {
        double mean = 0, var = 0;
        for (double v : x) mean += v;
        mean /= x.length;
        for (double v : x) var += (v - mean) * (v - mean);
        var /= x.length;
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = (x[i] - mean) / Math.sqrt(var + 1e-6);
        return y;
    }

    /** x * (1 + scale) + shift with shift = chunk a, scale = chunk b of mod. */
    private static double[] modulate(double[] x, double[] mod, int shiftChunk, int scaleChunk) {
        int d = x.length;
        double[] y = new double[d];
        for (int i = 0; i < d; i++) y[i] = x[i] * (1 + mod[scaleChunk * d + i]) + mod[shiftChunk * d + i];
        return y;
    }

    Tensor forward(Tensor xin, float[] t, int[] labels) {
        int n = xin.dim(0), c = cfg.inChannels(), s = cfg.inputSize(), p = cfg.patchSize(), g = s / p, tokens = g * g;
        int d = cfg.hiddenSize(), heads = cfg.numHeads(), hd = d / heads, oc = cfg.outChannels();
        float[] x = xin.data();
        Tensor out = Tensor.zeros(n, oc, s, s);
        for (int b = 0; b < n; b++) {
            // ---- patch embedding + pos_embed
            double[][] h = new double[tokens][d];
            float[] pw = p("x_embedder.proj.weight"), pb = p("x_embedder.proj.bias"), pos = p("pos_embed");
            for (int i = 0; i < g; i++) for (int j = 0; j < g; j++) for (int o = 0; o < d; o++) {
                double acc = pb[o];
                for (int ch = 0; ch < c; ch++) for (int pi = 0; pi < p; pi++) for (int qi = 0; qi < p; qi++)
                    acc += (double) pw[((o * c + ch) * p + pi) * p + qi] * x[((b * c + ch) * s + i * p + pi) * s + j * p + qi];
                h[i * g + j][o] = acc + pos[(i * g + j) * d + o];
            }
            // ---- conditioning: TimestepEmbedder (frequencies in float32 as the reference) + LabelEmbedder
            double[] freq = new double[256];
            for (int k = 0; k < 128; k++) {
                float f = (float) Math.exp((float) (-Math.log(10000)) * (float) k / 128f);
                float arg = t[b] * f;
                freq[k] = Math.cos(arg);
                freq[128 + k] = Math.sin(arg);
            }
            double[] cond = linear("t_embedder.mlp.2", silu(linear("t_embedder.mlp.0", freq)));
            if (cfg.numClasses() > 0) {
                float[] table = p("y_embedder.embedding_table.weight");
                for (int o = 0; o < d; o++) cond[o] += table[labels[b] * d + o];
            }
            double[] sc = silu(cond);
            // ---- blocks
            for (int blk = 0; blk < cfg.depth(); blk++) {
                String pre = "blocks." + blk + ".";
                double[] mod = linear(pre + "adaLN_modulation.1", sc);
                double[][] qkv = new double[tokens][];
                for (int tok = 0; tok < tokens; tok++) qkv[tok] = linear(pre + "attn.qkv", modulate(layerNorm(h[tok]), mod, 0, 1));
                double[][] att = new double[tokens][d];
                for (int hh = 0; hh < heads; hh++) for (int i = 0; i < tokens; i++) {
                    double[] sco = new double[tokens];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < tokens; j++) {
                        double dot = 0;
                        for (int e = 0; e < hd; e++) dot += qkv[i][hh * hd + e] * qkv[j][d + hh * hd + e];
                        sco[j] = dot * Math.pow(hd, -0.5);
                        mx = Math.max(mx, sco[j]);
                    }
                    double z = 0;
                    for (int j = 0; j < tokens; j++) { sco[j] = Math.exp(sco[j] - mx); z += sco[j]; }
                    for (int e = 0; e < hd; e++) {
                        double acc = 0;
                        for (int j = 0; j < tokens; j++) acc += sco[j] / z * qkv[j][2 * d + hh * hd + e];
                        att[i][hh * hd + e] = acc;
                    }
                }
                for (int tok = 0; tok < tokens; tok++) {
                    double[] a = linear(pre + "attn.proj", att[tok]);
                    for (int o = 0; o < d; o++) h[tok][o] += mod[2 * d + o] * a[o];
                }
                for (int tok = 0; tok < tokens; tok++) {
                    double[] f1 = linear(pre + "mlp.fc1", modulate(layerNorm(h[tok]), mod, 3, 4));
                    for (int i = 0; i < f1.length; i++) {
                        double v = f1[i];
                        f1[i] = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                    }
                    double[] f2 = linear(pre + "mlp.fc2", f1);
                    for (int o = 0; o < d; o++) h[tok][o] += mod[5 * d + o] * f2[o];
                }
            }
            // ---- final layer + unpatchify
            double[] fm = linear("final_layer.adaLN_modulation.1", sc);
            for (int i = 0; i < g; i++) for (int j = 0; j < g; j++) {
                double[] o = linear("final_layer.linear", modulate(layerNorm(h[i * g + j]), fm, 0, 1));
                for (int pi = 0; pi < p; pi++) for (int qi = 0; qi < p; qi++) for (int ch = 0; ch < oc; ch++)
                    out.set((float) o[(pi * p + qi) * oc + ch], b, ch, i * p + pi, j * p + qi);
            }
        }
        return out;
    }
}
