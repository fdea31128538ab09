package io.diffquant.kernels.tornado;

import java.io.PrintStream;
import java.util.List;

/**
 * A roofline ESTIMATE (not a measurement) of the tuned kernels on an H100-class GPU (Williams, Waterman &amp; Patterson,
 * "Roofline", CACM 2009), from each kernel's operation count and compulsory DRAM bytes. Device figures: NVIDIA H100 SXM5
 * (Hopper whitepaper, 2022): 132 SMs at 1.98 GHz, FP32 FMA 66.9 TFLOPS, INT32 multiply-add 33.5 TOPS (the CUDA-core rates:
 * TornadoVM's OpenCL kernels use no tensor cores), HBM3 3.35 TB/s, 50 MB L2 (every operand of these shapes fits, so
 * DRAM traffic is the compulsory traffic).
 *
 * <p>Kernel design ceiling: the tiled GEMMs compute one output per thread from 16x16 local-memory tiles; each
 * multiply-add needs two shared-memory load instructions per warp (one broadcast, one conflict-free), and an SM issues
 * one shared-memory wavefront per clock, so at most 16 multiply-adds per clock per SM: 132 x 16 x 1.98e9 = 4.18e12 MAC/s
 * = 8.4 T(FL)OPS for FP32 and INT alike. The attention kernel reads k and v through L1 at about one load per FMA: the same
 * ceiling. Launch floor: 5 us per kernel (driver + TornadoVM dispatch), added to every estimate.
 */
final class Roofline {
    private Roofline() {}

    static final double BW = 3.35e12, FP32 = 66.9e12, INT32 = 33.5e12, DESIGN = 132 * 16 * 1.98e9 * 2, LAUNCH = 5e-6;
    /** Dense tensor-core rates (Hopper whitepaper): BF16 989.4 TFLOPS, INT8 1978.9 TOPS. */
    static final double BF16_TC = 989.4e12, INT8_TC = 1978.9e12;

    record Model(String name, int rows, int d, int mlp, int samples, int tokens, int heads, int depth) {}

    static List<Model> models() {
        return List.of(new Model("dit-fmnist (28 px, patch 4), batch 8", 8 * 49, 192, 768, 8, 49, 4, 6),
                new Model("DiT-S/2 (256 px, latent 32), batch 8", 8 * 256, 384, 1536, 8, 256, 6, 12),
                new Model("DiT-XL/2 (256 px, latent 32), batch 8", 8 * 256, 1152, 4608, 8, 256, 16, 28));
    }

    /** ops, DRAM bytes and the compute roof (ops/s) of one GEMM [rows, in] x [out, in]^T of a kind, group 64 for INT / 16 for NVFP4. */
    static double[] gemm(String kind, long m, long k, long n) {
        double ops = 2.0 * m * k * n;
        return switch (kind) {
            case "FP32" -> new double[] {ops, 4.0 * (k * n + m * k + m * n + n), FP32};
            // quantize: read x (4 B), write codes (1 B) + a scale per row; GEMM: int8 weights + FP32 step per channel
            case "W8A8" -> new double[] {ops, 4.0 * m * k + m * k + 8.0 * m + (k * n + 4.0 * n) + m * k + 4.0 * (m * n + n), INT32};
            // int4 codes, FP32 step + uint8 zero point per group of 64
            case "W4A8" -> new double[] {ops, 4.0 * m * k + m * k + 8.0 * m + (k * n / 2.0 + 5.0 * n * k / 64) + m * k + 4.0 * (m * n + n), INT32};
            // 4-bit codes, one FP32 multiplier per block of 16, FP32 activations
            case "NVFP4" -> new double[] {ops, k * n / 2.0 + 4.0 * n * k / 16 + 4.0 * (m * k + m * n + n), FP32};
            default -> throw new IllegalArgumentException(kind);
        };
    }

    /** Seconds: max(ops / min(roof, design ceiling), bytes / BW) + launch floor per kernel. */
    static double seconds(double[] g, int kernels) {
        return Math.max(g[0] / Math.min(g[2], DESIGN), g[1] / BW) + kernels * LAUNCH;
    }

    static void print(PrintStream out) {
        out.println();
        out.println("## Roofline ESTIMATE for an H100 SXM5 (not measured; see the class comment for every assumption)");
        out.printf("Roofs: HBM3 %.2f TB/s, FP32 %.1f TFLOPS, INT32 MAD %.1f TOPS (CUDA cores, no tensor cores), design ceiling of the "
                + "tiled kernels %.1f T(FL)OPS, launch floor %.0f us per kernel.%n", BW / 1e12, FP32 / 1e12, INT32 / 1e12, DESIGN / 1e12, LAUNCH * 1e6);
        out.println("| model | layer | kind | GOP | MB moved | ops/byte | bound | est. us | est. TOPS | vs FP32 |");
        out.println("|---|---|---|---:|---:|---:|---|---:|---:|---:|");
        for (Model md : models()) {
            long[][] layers = {{md.d, 6L * md.d}, {md.d, 3L * md.d}, {md.d, md.d}, {md.d, md.mlp}, {md.mlp, md.d}};
            String[] names = {"adaLN", "qkv", "proj", "fc1", "fc2"};
            for (int li = 0; li < layers.length; li++) {
                long rows = li == 0 ? md.samples : md.rows;
                double f32 = 0;
                for (String kind : new String[] {"FP32", "W8A8", "W4A8", "NVFP4"}) {
                    double[] g = gemm(kind, rows, layers[li][0], layers[li][1]);
                    int kernels = kind.startsWith("W") ? 2 : 1;
                    double s = seconds(g, kernels);
                    if (kind.equals("FP32")) f32 = s;
                    boolean memory = g[1] / BW > g[0] / Math.min(g[2], DESIGN);
                    out.printf("| %s | %s | %s | %.3f | %.3f | %.1f | %s | %.1f | %.2f | %.2fx |%n", md.name, names[li], kind, g[0] / 1e9, g[1] / 1e6,
                            g[0] / g[1], memory ? "memory" : "compute", s * 1e6, g[0] / s / 1e12, f32 / s);
                }
            }
        }
        out.println();
        out.println("Per forward pass of all blocks (GEMMs + attention + element-wise kernels), three ESTIMATES: the tuned kernels as "
                + "written (design ceiling); an ideal CUDA-core kernel (FP32 FMA / INT32 MAD roofs); an ideal tensor-core kernel "
                + "(BF16 989 TFLOPS for the FP32 and NVFP4 paths, INT8 1979 TOPS for W8A8/W4A8; not reachable from TornadoVM's OpenCL "
                + "backend). Same byte counts in all three.");
        out.println("| model | kind | tuned kernels est. ms | ideal CUDA cores est. ms | ideal tensor cores est. ms |");
        out.println("|---|---|---:|---:|---:|");
        for (Model md : models()) {
            for (String kind : new String[] {"FP32", "W8A8", "W4A8", "NVFP4"}) {
                double[] t = new double[3];
                long[][] layers = {{md.samples, md.d, 6L * md.d}, {md.rows, md.d, 3L * md.d}, {md.rows, md.d, md.d}, {md.rows, md.d, md.mlp}, {md.rows, md.mlp, md.d}};
                for (int v = 0; v < 3; v++) {
                    double s = 0;
                    for (long[] l : layers) {
                        double[] g = gemm(kind, l[0], l[1], l[2]);
                        double roof = v == 0 ? Math.min(g[2], DESIGN) : v == 1 ? g[2] : (kind.startsWith("W") ? INT8_TC : BF16_TC);
                        s += Math.max(g[0] / roof, g[1] / BW) + (kind.startsWith("W") ? 2 : 1) * LAUNCH;
                    }
                    // attention: 4 B T^2 D flops, qkv read and output written once; FP32 in every variant
                    double attOps = 4.0 * md.samples * md.d * (double) md.tokens * md.tokens;
                    double attBytes = 4.0 * md.rows * 4 * md.d;
                    s += Math.max(attOps / (v == 0 ? DESIGN : v == 1 ? FP32 : BF16_TC), attBytes / BW) + LAUNCH;
                    // LayerNorm x2, GELU, gated residual x2: element-wise, ~8 bytes per element each
                    s += 5 * (8.0 * md.rows * md.d / BW + LAUNCH) + (8.0 * md.rows * md.mlp / BW);
                    t[v] = s * md.depth;
                }
                out.printf("| %s | %s | %.3f | %.3f | %.3f |%n", md.name, kind, t[0] * 1e3, t[1] * 1e3, t[2] * 1e3);
            }
        }
    }
}
