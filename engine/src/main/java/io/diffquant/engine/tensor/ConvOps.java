package io.diffquant.engine.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Fast kernels for the convolutional denoisers (diffusers UNet2DModel, src/diffusers/models/resnet.py,
 * upsampling.py and attention_processor.py): tiled im2col convolution with reused per-thread scratch and zero-copy
 * GEMMs, nearest-2x upsampling fused with its 3x3 convolution, GroupNorm fused with the ResNet scale-shift and SiLU,
 * multi-head self-attention on the token layout, and the small layout ops around them. Every kernel has a slow twin
 * in {@link Ops} (or a composition of Ops) that the tests compare it with. Tilings depend on the shapes only; with
 * oneDNN, GEMMs run single-threaded side by side or multi-threaded one at a time, so results may differ between
 * thread counts in the last bits of the GEMM sums.
 * Every op records itself on an active {@link Tape} (backward rules in {@link FusedOpsBackward} and
 * {@link OpsBackward}).
 */
public final class ConvOps {
    private ConvOps() {}

    private static final int EW_CHUNK = 1 << 14;
    /** Images are grouped into one im2col/GEMM until the GEMM has about this many columns. */
    private static final int TARGET_COLS = 512;

    // ------------------------------------------------------------------ scratch

    private static final int SLOT_COL = 0, SLOT_TMP = 1;
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[2][]);

    /** A per-thread buffer of at least n floats; contents undefined. Never escapes a kernel. */
    private static float[] scratch(int slot, int n) {
        float[][] s = SCRATCH.get();
        float[] a = s[slot];
        if (a == null || a.length < n) {
            a = new float[n];
            s[slot] = a;
        }
        return a;
    }

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT;
    private static final int NSLOT_W = 0, NSLOT_COL = 1, NSLOT_OUT = 2;
    private static final ThreadLocal<MemorySegment[]> NATIVE = ThreadLocal.withInitial(() -> new MemorySegment[3]);

    /** A per-thread native buffer of at least n floats (grown by half, freed with its thread); contents undefined. */
    private static MemorySegment nativeScratch(int slot, long n) {
        MemorySegment[] s = NATIVE.get();
        MemorySegment m = s[slot];
        if (m == null || m.byteSize() < 4 * n) {
            m = Arena.ofAuto().allocate(Math.max(4 * n, m == null ? 0 : m.byteSize() * 3 / 2), 64);
            s[slot] = m;
        }
        return m;
    }

    /** GEMMs of the convolutions run on native operands (im2col written off-heap, no staging copy of it). */
    private static boolean nativeGemm(Blas blas) { return blas instanceof DnnlBlas && DnnlBlas.ffm(); }

    // ------------------------------------------------------------------ convolution

    /**
     * 2-D convolution, NCHW, weight [O, C, kh, kw], bias [O] (nullable), square stride, symmetric zero padding.
     * Same contract and results (up to GEMM summation order) as {@link Ops#conv2d}. The output is computed in
     * column tiles of about {@value #TARGET_COLS} output pixels (several small images, or a band of rows of a
     * large one): im2col of the tile into a reused per-thread scratch, one GEMM (straight into the output when
     * the tile is one image), bias added while the tile is hot. Several tiles run side by side on the engine's
     * pool, each with a single-threaded GEMM; a single tile uses the pool for im2col and oneDNN's threads.
     */
    public static Tensor conv2d(Tensor x, Tensor w, Tensor b, int stride, int padding) {
        if (x.rank() != 4) throw new IllegalArgumentException("conv2d: input must be NCHW, got " + Arrays.toString(x.shape()));
        if (w.rank() != 4 || w.dim(1) != x.dim(1)) throw new IllegalArgumentException(
                "conv2d: input has " + x.dim(1) + " channels but weight is " + Arrays.toString(w.shape()));
        if (stride < 1 || padding < 0) throw new IllegalArgumentException("conv2d: stride " + stride + ", padding " + padding);
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
        int o = w.dim(0), kh = w.dim(2), kw = w.dim(3);
        if (b != null && b.size() != o) throw new IllegalArgumentException("conv2d: bias of " + b.size() + " for " + o + " filters");
        if (h + 2 * padding < kh || wd + 2 * padding < kw) throw new IllegalArgumentException(
                "conv2d: input " + Arrays.toString(x.shape()) + " smaller than the kernel " + kh + "x" + kw);
        int ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1;
        Tensor y = Tensor.zeros(n, o, ho, wo);
        if (n == 0 || o == 0 || c == 0) {
            if (b != null) Ops.addChannelsRaw(y.data(), b.data(), n, o, ho * wo);
            recordConv(x, w, b, y, stride, padding);
            return y;
        }
        Geometry g = new Geometry(n, c, h, wd, kh, kw, stride, padding, ho, wo);
        convInto(x.data(), w.data(), b == null ? null : b.data(), y.data(), o, g, false);
        recordConv(x, w, b, y, stride, padding);
        return y;
    }

    private static void recordConv(Tensor x, Tensor w, Tensor b, Tensor y, int stride, int padding) {
        Tape tape = Tape.active();
        if (tape == null) return;
        tape.save(x, w);
        tape.record("conv2d", y, (gy, g) -> conv2dBackward(gy, g, x, w, b, stride, padding), x, w, b);
    }

    /** Output columns per tile of the backward's weight-gradient GEMMs (tests lower it to get several tiles on small shapes). */
    static int backwardTileCols = 512;
    /** The weight gradient is summed in at most this many partial sums (fixed: the sum does not depend on the thread count). */
    private static final int WEIGHT_GRAD_PARTS = 8;

    /**
     * Backward of {@link #conv2d}. Bias: channel sums of dY. Weights: dW^T [kdim, O] += col(x) dY^T over column tiles
     * (im2col of the tile into a reused per-thread scratch, as the forward), the tiles split into a fixed number of
     * contiguous parts summed in order. Input, for stride 1 and a square kernel k with padding p <= k - 1: dX is
     * itself a convolution, of dY with the kernel transposed (in/out channels swapped) and flipped, padding k - 1 - p,
     * run by the forward's tiled kernel straight into dX (a long-K GEMM and a gather instead of a short-K GEMM and a
     * col2im scatter); other geometries (the stride-2 downsamplers) take {@link OpsBackward#conv2d}'s col2im path.
     */
    static void conv2dBackward(float[] gy, Tape.Grads g, Tensor x, Tensor w, Tensor b, int stride, int padding) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
        int o = w.dim(0), kh = w.dim(2), kw = w.dim(3);
        int ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1;
        float[] gx = g.of(x), gw = g.of(w), gb = b == null ? null : g.of(b);
        boolean fusedBias = gw != null && n * c > 0;
        if (gb != null && !fusedBias) OpsBackward.channelSums(gy, gb, n, o, ho * wo, false);
        if (n == 0 || c == 0 || o == 0 || ho * wo == 0) return;
        Geometry geo = new Geometry(n, c, h, wd, kh, kw, stride, padding, ho, wo);
        if (gw != null) weightGrad(gy, x.data(), gw, gb, o, geo);
        if (gx == null) return;
        if (stride == 1 && kh == kw && padding <= kh - 1) {
            float[] wsrc = w.data(), wt = new float[c * o * kh * kw];
            for (int oc = 0; oc < o; oc++)
                for (int ci = 0; ci < c; ci++)
                    for (int ki = 0; ki < kh; ki++)
                        for (int kj = 0; kj < kw; kj++)
                            wt[((ci * o + oc) * kh + kh - 1 - ki) * kw + kw - 1 - kj] = wsrc[((oc * c + ci) * kh + ki) * kw + kj];
            convInto(gy, wt, null, gx, c, new Geometry(n, o, ho, wo, kh, kw, 1, kh - 1 - padding, h, wd), true);
        } else {
            OpsBackward.conv2d(gy, t -> t == x ? gx : null, x, w, null, stride, padding);
        }
    }

    /**
     * gw [O, kdim] += sum over tiles of dY_tile [O, cols] col_tile^T, accumulated transposed per part; with gb non-null
     * the im2col gets a last row of ones, so that the GEMM's last row is the bias gradient (the channel sums of dY).
     */
    private static void weightGrad(float[] gy, float[] xd, float[] gw, float[] gb, int o, Geometry g) {
        if (g.sameConv()) {
            sameWeightGrad(gy, xd, gw, gb, o, g);
            return;
        }
        int kdim = g.kdim(), hw = g.hw(), wo = g.wo, rows = gb != null ? kdim + 1 : kdim;
        List<int[]> tiles = new ArrayList<>();
        int ipt = Math.max(1, Math.min(g.n, backwardTileCols / hw));
        if (hw <= backwardTileCols) {
            for (int i0 = 0; i0 < g.n; i0 += ipt) tiles.add(new int[] {i0, Math.min(ipt, g.n - i0), 0, g.ho});
        } else {
            int rpt = Math.max(1, backwardTileCols / wo);
            for (int i = 0; i < g.n; i++)
                for (int oy0 = 0; oy0 < g.ho; oy0 += rpt) tiles.add(new int[] {i, 1, oy0, Math.min(g.ho, oy0 + rpt)});
        }
        int parts = Math.min(WEIGHT_GRAD_PARTS, tiles.size());
        float[][] acc = new float[parts][rows * o];
        Blas blas = Blas.get();
        boolean dnnl = blas instanceof DnnlBlas;
        Parallel.RangeBody body = (p0, p1) -> {
            for (int p = p0; p < p1; p++) {
                int t0 = (int) ((long) tiles.size() * p / parts), t1 = (int) ((long) tiles.size() * (p + 1) / parts);
                for (int ti = t0; ti < t1; ti++) {
                    int[] tile = tiles.get(ti);
                    int i0 = tile[0], gi = tile[1], oy0 = tile[2], oy1 = tile[3], seg = (oy1 - oy0) * wo, cols = gi * seg;
                    float[] col = scratch(SLOT_COL, rows * cols);
                    float[] row = g.fastIm2col() ? null : new float[cols];
                    for (int r = 0; r < kdim; r++) im2colRow(xd, g, r, i0, gi, oy0, oy1, col, r * cols, row);
                    if (rows > kdim) Arrays.fill(col, kdim * cols, rows * cols, 1f);
                    float[] dy;
                    int dyOff, ld;
                    if (gi == 1) {
                        dy = gy;
                        dyOff = i0 * o * hw + oy0 * wo;
                        ld = hw;
                    } else {
                        dy = scratch(SLOT_TMP, o * cols);
                        for (int oc = 0; oc < o; oc++)
                            for (int i = 0; i < gi; i++) System.arraycopy(gy, ((i0 + i) * o + oc) * hw, dy, oc * cols + i * hw, hw);
                        dyOff = 0;
                        ld = cols;
                    }
                    // dW^T [kdim, O] += col [kdim, cols] dY^T [cols, O] (+ the bias row: ones [1, cols] dY^T)
                    blas.sgemm(false, true, rows, o, cols, 1f, col, 0, cols, dy, dyOff, ld, 1f, acc[p], 0, o);
                }
            }
        };
        if (parts >= 2 && Parallel.threads() > 1 && (!dnnl || NativeThreads.available())) {
            Parallel.forRange(parts, 1, (p0, p1) -> {
                if (dnnl) NativeThreads.singleThreaded(() -> body.run(p0, p1));
                else body.run(p0, p1);
            });
        } else {
            body.run(0, parts);
        }
        Parallel.forRange(o, Math.max(1, EW_CHUNK / Math.max(1, kdim * parts)), (o0, o1) -> {
            for (int oc = o0; oc < o1; oc++)
                for (int k = 0; k < kdim; k++) {
                    float sum = acc[0][k * o + oc];
                    for (int p = 1; p < parts; p++) sum += acc[p][k * o + oc];
                    gw[oc * kdim + k] += sum;
                }
        });
        if (gb != null) {
            for (int oc = 0; oc < o; oc++) {
                float sum = acc[0][kdim * o + oc];
                for (int p = 1; p < parts; p++) sum += acc[p][kdim * o + oc];
                gb[oc] += sum;
            }
        }
    }

    /**
     * {@link #weightGrad} of a "same" stride-1 convolution on the row-shift buffers of {@link #sameConvInto}: per tile and
     * kernel row ki, dW_ki^T [(ci, kj), O] += S[:, ki*w ...] dY^T (dY with zeros in the dropped columns between images),
     * and the bias gradient as ones [1, cols] dY^T; tiles split into a fixed number of parts summed in order.
     */
    private static void sameWeightGrad(float[] gy, float[] xd, float[] gw, float[] gb, int o, Geometry g) {
        int kh = g.kh, kw = g.kw, c = g.c, w = g.w, hw = g.hw(), rs = g.shiftRows(), kdim = g.kdim();
        List<int[]> tiles = tiles(g, 2 * backwardTileCols);
        int parts = Math.min(WEIGHT_GRAD_PARTS, tiles.size()), accLen = (kh * rs + 1) * o;
        float[][] acc = new float[parts][accLen];
        Blas blas = Blas.get();
        boolean dnnl = blas instanceof DnnlBlas;
        Parallel.RangeBody body = (p0, p1) -> {
            for (int p = p0; p < p1; p++) {
                int t0 = (int) ((long) tiles.size() * p / parts), t1 = (int) ((long) tiles.size() * (p + 1) / parts);
                for (int ti = t0; ti < t1; ti++) {
                    int[] tile = tiles.get(ti);
                    int i0 = tile[0], gi = tile[1], oy0 = tile[2], oy1 = tile[3], th = oy1 - oy0, seg = th * w;
                    int ext = (th + kh - 1) * w, len = gi * ext, cols = (gi - 1) * ext + seg;
                    float[] sb = scratch(SLOT_COL, (rs + 1) * len);
                    shiftRowsOf(xd, g, i0, gi, oy0, oy1, sb);
                    float[] dy;
                    int dyOff, ld;
                    if (gi == 1) {
                        dy = gy;
                        dyOff = i0 * o * hw + oy0 * w;
                        ld = hw;
                    } else {
                        dy = scratch(SLOT_TMP, o * cols);
                        for (int oc = 0; oc < o; oc++)
                            for (int i = 0; i < gi; i++) {
                                int d0 = oc * cols + i * ext;
                                System.arraycopy(gy, ((i0 + i) * o + oc) * hw + oy0 * w, dy, d0, seg);
                                if (i + 1 < gi) Arrays.fill(dy, d0 + seg, d0 + ext, 0f);
                            }
                        dyOff = 0;
                        ld = cols;
                    }
                    for (int ki = 0; ki < kh; ki++)
                        blas.sgemm(false, true, rs, o, cols, 1f, sb, ki * w, len, dy, dyOff, ld, 1f, acc[p], ki * rs * o, o);
                    if (gb != null) {
                        Arrays.fill(sb, rs * len, rs * len + cols, 1f);
                        blas.sgemm(false, true, 1, o, cols, 1f, sb, rs * len, len, dy, dyOff, ld, 1f, acc[p], kh * rs * o, o);
                    }
                }
            }
        };
        if (parts >= 2 && Parallel.threads() > 1 && (!dnnl || NativeThreads.available())) {
            Parallel.forRange(parts, 1, (p0, p1) -> {
                if (dnnl) NativeThreads.singleThreaded(() -> body.run(p0, p1));
                else body.run(p0, p1);
            });
        } else {
            body.run(0, parts);
        }
        Parallel.forRange(o, Math.max(1, EW_CHUNK / Math.max(1, kdim * parts)), (o0, o1) -> {
            for (int oc = o0; oc < o1; oc++)
                for (int ci = 0; ci < c; ci++)
                    for (int ki = 0; ki < kh; ki++)
                        for (int kj = 0; kj < kw; kj++) {
                            int a = (ki * rs + ci * kw + kj) * o + oc;
                            float sum = acc[0][a];
                            for (int p = 1; p < parts; p++) sum += acc[p][a];
                            gw[((oc * c + ci) * kh + ki) * kw + kj] += sum;
                        }
        });
        if (gb != null) {
            for (int oc = 0; oc < o; oc++) {
                float sum = acc[0][kh * rs * o + oc];
                for (int p = 1; p < parts; p++) sum += acc[p][kh * rs * o + oc];
                gb[oc] += sum;
            }
        }
    }

    /**
     * y (+)= conv(x, w) + bias for the geometry g ({@code accumulate}: added to y's current values, else y is
     * overwritten); the tiled kernel of {@link #conv2d} without checks or recording.
     */
    private static void convInto(float[] xd, float[] wdat, float[] bias, float[] yd, int o, Geometry g, boolean accumulate) {
        if (g.sameConv()) {
            sameConvInto(xd, wdat, bias, yd, o, g, accumulate);
            return;
        }
        Blas blas = Blas.get();
        boolean dnnl = blas instanceof DnnlBlas;
        List<int[]> tiles = tiles(g);
        MemorySegment wa = null;
        if (nativeGemm(blas)) {
            wa = nativeScratch(NSLOT_W, (long) o * g.kdim());
            MemorySegment.copy(wdat, 0, wa, F32, 0, o * g.kdim());
        }
        MemorySegment wn = wa;
        if (tiles.size() >= 2 && Parallel.threads() > 1 && (!dnnl || NativeThreads.available())) {
            // one tile per task: im2col, a single-threaded GEMM and the copy-out stay on one core and in its cache
            Parallel.forRange(tiles.size(), 1, (t0, t1) -> {
                Runnable run = () -> {
                    for (int ti = t0; ti < t1; ti++) convTile(blas, wn, xd, wdat, bias, yd, o, g, tiles.get(ti), false, accumulate);
                };
                if (dnnl) NativeThreads.singleThreaded(run);
                else run.run();
            });
        } else {
            for (int[] tile : tiles) convTile(blas, wn, xd, wdat, bias, yd, o, g, tile, true, accumulate);
        }
    }

    /** Output columns per tile of the row-shift convolution (whole images up to about this many pixels). */
    private static final int SHIFT_TILE_COLS = 1024;

    /** Tiles {img0, images, oy0, oy1} of about {@code target} output pixels; they depend on the shapes only. */
    private static List<int[]> tiles(Geometry g, int target) {
        List<int[]> r = new ArrayList<>();
        int hw = g.hw();
        if (hw <= target) {
            int ipt = Math.max(1, Math.min(g.n, target / hw));
            for (int i0 = 0; i0 < g.n; i0 += ipt) r.add(new int[] {i0, Math.min(ipt, g.n - i0), 0, g.ho});
        } else {
            int rpt = Math.max(1, target / g.wo);
            for (int i = 0; i < g.n; i++)
                for (int oy0 = 0; oy0 < g.ho; oy0 += rpt) r.add(new int[] {i, 1, oy0, Math.min(g.ho, oy0 + rpt)});
        }
        return r;
    }

    /**
     * "Same" stride-1 convolution as kh GEMMs per tile instead of one im2col GEMM: the buffer S [(ci, kj), ...] holds,
     * per image of the tile, the input rows oy0 - pad .. oy1 - pad + kh - 2 shifted horizontally by kj - pad (zero
     * outside), (th + kh - 1) * w values; kernel row ki then reads S from column ki * w on, so
     * y (+)= sum over ki of W_ki [O, C*kw] S[:, ki*w ...]. S is kh times smaller than the im2col matrix. With several
     * images per tile the GEMM also computes (kh - 1) * w columns between images that are dropped.
     */
    private static void sameConvInto(float[] xd, float[] wdat, float[] bias, float[] yd, int o, Geometry g, boolean accumulate) {
        int kh = g.kh, kw = g.kw, c = g.c, rs = g.shiftRows();
        float[] wk = new float[kh * o * rs]; // W_ki [O, (ci, kj)]
        for (int oc = 0; oc < o; oc++)
            for (int ci = 0; ci < c; ci++)
                for (int ki = 0; ki < kh; ki++)
                    for (int kj = 0; kj < kw; kj++)
                        wk[(ki * o + oc) * rs + ci * kw + kj] = wdat[((oc * c + ci) * kh + ki) * kw + kj];
        Blas blas = Blas.get();
        boolean dnnl = blas instanceof DnnlBlas;
        List<int[]> tiles = tiles(g, SHIFT_TILE_COLS);
        Parallel.RangeBody body = (t0, t1) -> {
            for (int ti = t0; ti < t1; ti++) sameConvTile(blas, xd, wk, bias, yd, o, g, tiles.get(ti), accumulate);
        };
        if (tiles.size() >= 2 && Parallel.threads() > 1 && (!dnnl || NativeThreads.available())) {
            Parallel.forRange(tiles.size(), 1, (t0, t1) -> {
                if (dnnl) NativeThreads.singleThreaded(() -> body.run(t0, t1));
                else body.run(t0, t1);
            });
        } else {
            body.run(0, tiles.size());
        }
    }

    /** The row-shift buffer S of one tile into dst [rs, gi * ext] (ext = (th + kh - 1) * w); writes every element. */
    private static void shiftRowsOf(float[] xd, Geometry g, int i0, int gi, int oy0, int oy1, float[] dst) {
        int w = g.w, h = g.h, kw = g.kw, th = oy1 - oy0, ext = (th + g.kh - 1) * w, len = gi * ext;
        for (int ci = 0; ci < g.c; ci++)
            for (int kj = 0; kj < kw; kj++) {
                int r = ci * kw + kj;
                for (int img = 0; img < gi; img++)
                    shiftedPlane(xd, ((i0 + img) * g.c + ci) * h * w, h, w, -g.pad, kj - g.pad, oy0, oy1 + g.kh - 1, dst,
                            r * len + img * ext);
            }
    }

    private static void sameConvTile(Blas blas, float[] xd, float[] wk, float[] bias, float[] yd, int o, Geometry g, int[] tile,
                                     boolean accumulate) {
        int i0 = tile[0], gi = tile[1], oy0 = tile[2], oy1 = tile[3];
        int w = g.w, hw = g.hw(), kh = g.kh, rs = g.shiftRows(), th = oy1 - oy0, seg = th * w;
        int ext = (th + kh - 1) * w, len = gi * ext, cols = (gi - 1) * ext + seg;
        float[] sb = scratch(SLOT_COL, rs * len);
        shiftRowsOf(xd, g, i0, gi, oy0, oy1, sb);
        if (gi == 1) {
            int yo = i0 * o * hw + oy0 * w;
            for (int ki = 0; ki < kh; ki++)
                blas.sgemm(false, false, o, seg, rs, 1f, wk, ki * o * rs, rs, sb, ki * w, len, accumulate || ki > 0 ? 1f : 0f, yd, yo, hw);
            if (bias != null) for (int oc = 0; oc < o; oc++) addScalar(yd, yo + oc * hw, seg, bias[oc]);
            return;
        }
        float[] tmp = scratch(SLOT_TMP, o * cols);
        for (int ki = 0; ki < kh; ki++)
            blas.sgemm(false, false, o, cols, rs, 1f, wk, ki * o * rs, rs, sb, ki * w, len, ki > 0 ? 1f : 0f, tmp, 0, cols);
        for (int oc = 0; oc < o; oc++)
            for (int i = 0; i < gi; i++) {
                int yo = ((i0 + i) * o + oc) * hw + oy0 * w;
                if (accumulate) addTo(tmp, oc * cols + i * ext, yd, yo, seg);
                else System.arraycopy(tmp, oc * cols + i * ext, yd, yo, seg);
                if (bias != null) addScalar(yd, yo, seg, bias[oc]);
            }
    }

    /**
     * im2col of one tile {img0, images, oy0, oy1} into this thread's scratch, one GEMM (straight into y when the
     * tile is a single image), bias. {@code inner}: split the im2col and copy-out over the pool (the GEMM then
     * uses oneDNN's own threads).
     */
    private static void convTile(Blas blas, MemorySegment wn, float[] xd, float[] wdat, float[] bias, float[] yd, int o,
                                 Geometry g, int[] tile, boolean inner, boolean accumulate) {
        int i0 = tile[0], gi = tile[1], oy0 = tile[2], oy1 = tile[3];
        int kdim = g.kdim(), hw = g.hw(), wo = g.wo, seg = (oy1 - oy0) * wo, cols = gi * seg;
        if (wn != null) {
            // im2col rows assembled on the heap (L1) and copied straight into the native B operand
            MemorySegment col = nativeScratch(NSLOT_COL, (long) kdim * cols), out = nativeScratch(NSLOT_OUT, (long) o * cols);
            Parallel.RangeBody im2col = (r0, r1) -> {
                float[] row = new float[cols], asm = g.fastIm2col() ? null : new float[cols];
                for (int r = r0; r < r1; r++) {
                    im2colRow(xd, g, r, i0, gi, oy0, oy1, row, 0, asm);
                    MemorySegment.copy(row, 0, col, F32, 4L * r * cols, cols);
                }
            };
            if (inner) Parallel.forRange(kdim, Math.max(1, 4096 / cols), im2col);
            else im2col.run(0, kdim);
            DnnlBlas.sgemmNative(false, false, o, cols, kdim, 1f, wn, kdim, col, cols, 0f, out, cols);
            Parallel.RangeBody copy = (o0, o1) -> {
                float[] add = accumulate ? new float[seg] : null;
                for (int oc = o0; oc < o1; oc++)
                    for (int i = 0; i < gi; i++) {
                        int yo = ((i0 + i) * o + oc) * hw + oy0 * wo;
                        if (accumulate) {
                            MemorySegment.copy(out, F32, 4L * (oc * cols + i * seg), add, 0, seg);
                            addTo(add, 0, yd, yo, seg);
                        } else {
                            MemorySegment.copy(out, F32, 4L * (oc * cols + i * seg), yd, yo, seg);
                        }
                        if (bias != null) addScalar(yd, yo, seg, bias[oc]);
                    }
            };
            if (inner) Parallel.forRange(o, Math.max(1, EW_CHUNK / cols), copy);
            else copy.run(0, o);
            return;
        }
        float[] col = scratch(SLOT_COL, kdim * cols);
        Parallel.RangeBody im2col = (r0, r1) -> {
            float[] row = g.fastIm2col() ? null : new float[cols];
            for (int r = r0; r < r1; r++) im2colRow(xd, g, r, i0, gi, oy0, oy1, col, r * cols, row);
        };
        if (inner) Parallel.forRange(kdim, Math.max(1, 4096 / cols), im2col);
        else im2col.run(0, kdim);
        if (gi == 1) {
            // C[oc, j] = y[i0, oc, oy0 * wo + j]: rows hw apart
            int yo = i0 * o * hw + oy0 * wo;
            blas.sgemm(false, false, o, cols, kdim, 1f, wdat, 0, kdim, col, 0, cols, accumulate ? 1f : 0f, yd, yo, hw);
            if (bias != null) for (int oc = 0; oc < o; oc++) addScalar(yd, yo + oc * hw, seg, bias[oc]);
        } else {
            float[] tmp = scratch(SLOT_TMP, o * cols);
            blas.sgemm(false, false, o, cols, kdim, 1f, wdat, 0, kdim, col, 0, cols, 0f, tmp, 0, cols);
            Parallel.RangeBody copy = (o0, o1) -> {
                for (int oc = o0; oc < o1; oc++)
                    for (int i = 0; i < gi; i++) {
                        int yo = ((i0 + i) * o + oc) * hw + oy0 * wo;
                        if (accumulate) addTo(tmp, oc * cols + i * seg, yd, yo, seg);
                        else System.arraycopy(tmp, oc * cols + i * seg, yd, yo, seg);
                        if (bias != null) addScalar(yd, yo, seg, bias[oc]);
                    }
            };
            if (inner) Parallel.forRange(o, Math.max(1, EW_CHUNK / cols), copy);
            else copy.run(0, o);
        }
    }

    /** The column tiles {img0, images, oy0, oy1} of a convolution; they depend on the shapes only. */
    private static List<int[]> tiles(Geometry g) {
        List<int[]> r = new ArrayList<>();
        int ipt = g.imagesPerTile(), rpt = g.rowsPerTile();
        if (rpt >= g.ho) {
            for (int i0 = 0; i0 < g.n; i0 += ipt) r.add(new int[] {i0, Math.min(ipt, g.n - i0), 0, g.ho});
        } else {
            for (int i = 0; i < g.n; i++)
                for (int oy0 = 0; oy0 < g.ho; oy0 += rpt) r.add(new int[] {i, 1, oy0, Math.min(g.ho, oy0 + rpt)});
        }
        return r;
    }

    /** Shapes of one convolution and its column tiling. */
    private record Geometry(int n, int c, int h, int w, int kh, int kw, int stride, int pad, int ho, int wo) {
        int hw() { return ho * wo; }
        int kdim() { return c * kh * kw; }
        /** Whole images per tile (>= 1); when 1 and an image is larger than a tile, rows per tile below. */
        int imagesPerTile() { return Math.max(1, Math.min(n, TARGET_COLS / hw())); }
        int rowsPerTile() { return hw() <= TARGET_COLS ? ho : Math.max(1, TARGET_COLS / wo); }
        /** Stride 1 and output width = input width: every tap is a constant shift of the flattened plane. */
        boolean fastIm2col() { return stride == 1 && wo == w && kw <= w; }
        /** Stride 1 and output = input size (padding (k - 1) / 2 both ways): the row-shift formulation applies. */
        boolean sameConv() { return stride == 1 && ho == h && wo == w && kw <= w && pad < kh; }
        /** Rows of the row-shift buffer: (input channel, kernel column). */
        int shiftRows() { return c * kw; }
    }

    /** y[yo ..+len) += a[ao ..+len). */
    private static void addTo(float[] a, int ao, float[] y, int yo, int len) {
        for (int i = 0; i < len; i++) y[yo + i] += a[ao + i];
    }

    private static void addScalar(float[] y, int o, int len, float v) {
        for (int i = o; i < o + len; i++) y[i] += v;
    }

    /**
     * One im2col row r = (ci, ki, kj) of a tile (images [i0, i0 + gi), output rows [oy0, oy1)) into
     * dst[off ...]: for every output pixel the input value its kernel tap (ki, kj) reads, or 0 in the padding.
     * Writes every element. With stride 1 and an output as wide as the input ("same" and 1x1 convolutions) the
     * tap is a constant shift of the flattened input plane: one bulk copy per image, then the few wrapped-around
     * columns are zeroed. Otherwise the row is assembled in {@code row} (length cols) and copied.
     */
    private static void im2colRow(float[] xd, Geometry g, int r, int i0, int gi, int oy0, int oy1, float[] dst, int off,
                                  float[] row) {
        int kk = g.kh * g.kw, ci = r / kk, rem = r % kk, ki = rem / g.kw, kj = rem % g.kw;
        int wo = g.wo, wd = g.w, h = g.h, pad = g.pad, stride = g.stride, th = oy1 - oy0;
        if (g.fastIm2col()) {
            for (int img = 0; img < gi; img++)
                shiftedPlane(xd, ((i0 + img) * g.c + ci) * h * wd, h, wd, ki - pad, kj - pad, oy0, oy1, dst, off + img * th * wo);
            return;
        }
        int ox0 = Math.max(0, pad - kj), ox1 = Math.min(wo, wd + pad - kj); // valid columns for stride 1
        int base = 0;
        for (int img = 0; img < gi; img++) {
            int xo = ((i0 + img) * g.c + ci) * h * wd;
            for (int oy = oy0; oy < oy1; oy++, base += wo) {
                int iy = oy * stride - pad + ki;
                if (iy < 0 || iy >= h) { Arrays.fill(row, base, base + wo, 0f); continue; }
                int xrow = xo + iy * wd;
                if (stride == 1) {
                    if (ox1 <= ox0) { Arrays.fill(row, base, base + wo, 0f); continue; }
                    if (ox0 > 0) Arrays.fill(row, base, base + ox0, 0f);
                    System.arraycopy(xd, xrow + ox0 - pad + kj, row, base + ox0, ox1 - ox0);
                    if (ox1 < wo) Arrays.fill(row, base + ox1, base + wo, 0f);
                } else {
                    for (int ox = 0; ox < wo; ox++) {
                        int ix = ox * stride - pad + kj;
                        row[base + ox] = ix < 0 || ix >= wd ? 0f : xd[xrow + ix];
                    }
                }
            }
        }
        System.arraycopy(row, 0, dst, off, base);
    }

    /**
     * dst[base + (oy - oy0) * w + ox] = x[xo + (oy + sy) * w + ox + sx] for oy in [oy0, oy1), ox in [0, w), or 0 where
     * the source lies outside the h x w plane: one bulk copy of the flattened plane, then the rows and the |sx|
     * wrapped-around columns that fall outside are zeroed. Writes every element.
     */
    private static void shiftedPlane(float[] x, int xo, int h, int w, int sy, int sx, int oy0, int oy1, float[] dst, int base) {
        int plane = h * w, th = oy1 - oy0;
        int vy0 = Math.max(oy0, -sy), vy1 = Math.min(oy1, h - sy); // rows whose source row is inside
        if (vy1 <= vy0 || Math.abs(sx) >= w) { Arrays.fill(dst, base, base + th * w, 0f); return; }
        if (vy0 > oy0) Arrays.fill(dst, base, base + (vy0 - oy0) * w, 0f);
        if (vy1 < oy1) Arrays.fill(dst, base + (vy1 - oy0) * w, base + th * w, 0f);
        int d0 = base + (vy0 - oy0) * w;
        int s0 = (vy0 + sy) * w + sx, len = (vy1 - vy0) * w;
        int lo = Math.max(0, -s0), hi = Math.min(len, plane - s0);
        if (hi > lo) System.arraycopy(x, xo + s0 + lo, dst, d0 + lo, hi - lo);
        if (sx != 0) {
            int c0 = sx < 0 ? 0 : w - sx, cn = Math.abs(sx);
            for (int oy = vy0; oy < vy1; oy++) {
                int q = d0 + (oy - vy0) * w + c0;
                for (int j = 0; j < cn; j++) dst[q + j] = 0f;
            }
        }
    }

    // ------------------------------------------------------------------ nearest 2x upsampling + 3x3 convolution

    /**
     * conv2d(upsampleNearest2x(x), w, b, stride 1, padding 1) for a 3x3 kernel without materialising the upsampled
     * image (diffusers' Upsample2D with use_conv): output pixel (2i + a, 2j + b) only sees source rows
     * i - 1 + a .. i + a and columns j - 1 + b .. j + b, so each of the four phases (a, b) is a 2x2 convolution of x
     * with row/column-summed weights (a = 0: rows {w0, w1 + w2}; a = 1: {w0 + w1, w2}): 16 instead of 36
     * multiply-adds per source pixel and output channel. Equal to the composition up to float rounding; while a
     * {@link Tape} records, the composition itself runs (so that backward sees the ops it knows).
     */
    public static Tensor upsample2xConv3x3(Tensor x, Tensor w, Tensor b) {
        if (x.rank() != 4 || w.rank() != 4 || w.dim(1) != x.dim(1) || w.dim(2) != 3 || w.dim(3) != 3)
            throw new IllegalArgumentException("upsample2xConv3x3: input " + Arrays.toString(x.shape()) + ", weight "
                    + Arrays.toString(w.shape()) + " (needs NCHW and a 3x3 kernel over the input channels)");
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3), o = w.dim(0);
        if (b != null && b.size() != o) throw new IllegalArgumentException("upsample2xConv3x3: bias of " + b.size() + " for " + o + " filters");
        // under a tape: the composition, whose ops record their own backward rules
        if (Tape.active() != null) return conv2d(Ops.upsampleNearest2x(x), w, b, 1, 1);
        Tensor y = Tensor.zeros(n, o, 2 * h, 2 * wd);
        if (y.size() == 0) return y;
        int hw = h * wd, k4 = 4 * c;
        float[] xd = x.data(), yd = y.data(), bias = b == null ? null : b.data();
        float[][] wp = phaseWeights(w.data(), o, c);
        int ipt = Math.max(1, Math.min(n, TARGET_COLS / hw));
        List<int[]> tiles = new ArrayList<>(); // {phase, img0, images}
        for (int ph = 0; ph < 4; ph++) for (int i0 = 0; i0 < n; i0 += ipt) tiles.add(new int[] {ph, i0, Math.min(ipt, n - i0)});
        Blas blas = Blas.get();
        boolean dnnl = blas instanceof DnnlBlas;
        MemorySegment wn = null;
        if (nativeGemm(blas)) {
            wn = nativeScratch(NSLOT_W, 4L * o * k4);
            for (int ph = 0; ph < 4; ph++) MemorySegment.copy(wp[ph], 0, wn, F32, 4L * ph * o * k4, o * k4);
        }
        MemorySegment wseg = wn;
        Parallel.RangeBody body = (t0, t1) -> {
            for (int ti = t0; ti < t1; ti++) {
                int ph = tiles.get(ti)[0], i0 = tiles.get(ti)[1], gi = tiles.get(ti)[2], a = ph >> 1, bb = ph & 1, cols = gi * hw;
                float[] tmp = scratch(SLOT_TMP, o * cols);
                if (wseg != null) {
                    MemorySegment col = nativeScratch(NSLOT_COL, (long) k4 * cols), out = nativeScratch(NSLOT_OUT, (long) o * cols);
                    float[] row = scratch(SLOT_COL, cols);
                    for (int r = 0; r < k4; r++) {
                        int ci = r / 4, di = (r >> 1) & 1, dj = r & 1;
                        for (int img = 0; img < gi; img++)
                            shiftedPlane(xd, ((i0 + img) * c + ci) * hw, h, wd, di - 1 + a, dj - 1 + bb, 0, h, row, img * hw);
                        MemorySegment.copy(row, 0, col, F32, 4L * r * cols, cols);
                    }
                    DnnlBlas.sgemmNative(false, false, o, cols, k4, 1f, wseg.asSlice(4L * ph * o * k4), k4, col, cols, 0f, out, cols);
                    MemorySegment.copy(out, F32, 0, tmp, 0, o * cols);
                } else {
                    float[] col = scratch(SLOT_COL, k4 * cols);
                    for (int ci = 0; ci < c; ci++)
                        for (int di = 0; di < 2; di++)
                            for (int dj = 0; dj < 2; dj++) {
                                int r = ci * 4 + di * 2 + dj;
                                for (int img = 0; img < gi; img++)
                                    shiftedPlane(xd, ((i0 + img) * c + ci) * hw, h, wd, di - 1 + a, dj - 1 + bb, 0, h, col, r * cols + img * hw);
                            }
                    blas.sgemm(false, false, o, cols, k4, 1f, wp[ph], 0, k4, col, 0, cols, 0f, tmp, 0, cols);
                }
                int w2 = 2 * wd;
                for (int oc = 0; oc < o; oc++) {
                    float bv = bias == null ? 0f : bias[oc];
                    for (int img = 0; img < gi; img++) {
                        int src = oc * cols + img * hw, dst = ((i0 + img) * o + oc) * 4 * hw + a * w2 + bb;
                        for (int i = 0; i < h; i++, dst += 2 * w2)
                            for (int j = 0; j < wd; j++) yd[dst + 2 * j] = tmp[src + i * wd + j] + bv;
                        }
                }
            }
        };
        if (tiles.size() >= 2 && Parallel.threads() > 1 && (!dnnl || NativeThreads.available())) {
            Parallel.forRange(tiles.size(), 1, (t0, t1) -> {
                if (dnnl) NativeThreads.singleThreaded(() -> body.run(t0, t1));
                else body.run(t0, t1);
            });
        } else {
            body.run(0, tiles.size());
        }
        return y;
    }

    /** The four 2x2 phase kernels [O, C*4] (row-major taps (di, dj)) of a 3x3 kernel under nearest 2x upsampling. */
    private static float[][] phaseWeights(float[] w, int o, int c) {
        float[][] wp = new float[4][o * c * 4];
        for (int f = 0; f < o * c; f++) {
            int q = f * 9;
            for (int a = 0; a < 2; a++)
                for (int bb = 0; bb < 2; bb++) {
                    float[] dst = wp[a * 2 + bb];
                    for (int di = 0; di < 2; di++)
                        for (int dj = 0; dj < 2; dj++) {
                            float s = 0;
                            for (int ki = 0; ki < 3; ki++) {
                                if (tapRow(a, ki) != di) continue;
                                for (int kj = 0; kj < 3; kj++) if (tapRow(bb, kj) == dj) s += w[q + ki * 3 + kj];
                            }
                            dst[f * 4 + di * 2 + dj] = s;
                        }
                }
        }
        return wp;
    }

    /** Which of the two source rows (0: i - 1 + a, 1: i + a) kernel row k reads for output phase a. */
    private static int tapRow(int a, int k) { return (a + k - 1) >> 1 == a - 1 ? 0 : 1; }

    /** Zero padding of NCHW: top, bottom, left, right (diffusers' Downsample2D pads (0, 1, 0, 1) when padding = 0). */
    public static Tensor pad(Tensor x, int top, int bottom, int left, int right) {
        if (x.rank() != 4) throw new IllegalArgumentException("pad: input must be NCHW, got " + Arrays.toString(x.shape()));
        if (top < 0 || bottom < 0 || left < 0 || right < 0) throw new IllegalArgumentException("pad: negative padding");
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), h2 = h + top + bottom, w2 = w + left + right;
        Tensor y = Tensor.zeros(n, c, h2, w2);
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(n * c, Math.max(1, EW_CHUNK / Math.max(1, h * w)), (r0, r1) -> {
            for (int r = r0; r < r1; r++)
                for (int i = 0; i < h; i++)
                    System.arraycopy(xd, r * h * w + i * w, yd, r * h2 * w2 + (i + top) * w2 + left, w);
        });
        Tape tape = Tape.active();
        if (tape != null) tape.record("pad", y, (gy, g) -> FusedOpsBackward.pad(gy, g.of(x), n * c, h, w, top, left, h2, w2), x);
        return y;
    }

    // ------------------------------------------------------------------ normalisation + activation

    /**
     * GroupNorm on NCHW fused with the ResNet time conditioning and SiLU:
     * {@code y = act(((x - mean_g) * rstd_g * gamma_c + beta_c) * (1 + scale[n, c]) + shift[n, c])}, where
     * {@code scaleShift} [N, 2C] holds scale in its first C columns and shift in the next C (diffusers'
     * {@code torch.chunk(temb, 2, dim=1)}), or is null. Statistics as {@link Ops#groupNorm} (biased variance).
     */
    public static Tensor groupNormAct(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, Tensor scaleShift,
                                      boolean silu) {
        if (x.rank() < 2) throw new IllegalArgumentException("groupNorm: input must be [N, C, ...], got " + Arrays.toString(x.shape()));
        int n = x.dim(0), c = x.dim(1);
        if (groups < 1 || c % groups != 0) throw new IllegalArgumentException("groupNorm: " + c + " channels not divisible by " + groups + " groups");
        if (gamma != null && gamma.size() != c || beta != null && beta.size() != c) throw new IllegalArgumentException(
                "groupNorm: affine parameters do not have " + c + " channels");
        if (scaleShift != null && scaleShift.size() != n * 2 * c) throw new IllegalArgumentException(
                "groupNorm: scale/shift " + Arrays.toString(scaleShift.shape()) + " for input " + Arrays.toString(x.shape()));
        Tensor y = Tensor.zeros(x.shape());
        if (x.size() == 0) return y;
        int inner = x.size() / (n * c), cg = c / groups, gsize = cg * inner;
        float[] xd = x.data(), yd = y.data();
        float[] g = gamma == null ? null : gamma.data(), bt = beta == null ? null : beta.data();
        float[] ss = scaleShift == null ? null : scaleShift.data();
        Tape tape = Tape.active();
        // under a tape: normalised values and 1/std per (sample, group) kept for backward
        // under a tape: mean and 1/std per (sample, group) kept for backward (which recomputes the normalised values)
        float[] means = tape == null ? null : new float[n * groups], rstd = tape == null ? null : new float[n * groups];
        Parallel.forRange(n * groups, 1, (r0, r1) -> {
            float[] xs = new float[BLK], e = new float[BLK];
            int[] bits = new int[BLK];
            for (int r = r0; r < r1; r++) {
                int o = r * gsize, g0 = (r % groups) * cg, img = r / groups;
                double mean = sum(xd, o, gsize) / gsize;
                float mf = (float) mean;
                double var = sumSqDev(xd, o, gsize, mf) / gsize;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                if (rstd != null) {
                    rstd[r] = inv;
                    means[r] = mf;
                }
                for (int ci = 0; ci < cg; ci++) {
                    int ch = g0 + ci;
                    float gg = g == null ? 1f : g[ch], bb = bt == null ? 0f : bt[ch];
                    float a = inv * gg, sh = bb - mf * a;
                    if (ss != null) {
                        float s1 = 1f + ss[img * 2 * c + ch];
                        a *= s1;
                        sh = sh * s1 + ss[img * 2 * c + c + ch];
                    }
                    int co = o + ci * inner;
                    affine(xd, yd, co, inner, a, sh);
                }
                if (silu) siluInPlace(yd, o, gsize, xs, e, bits);
            }
        });
        if (tape != null) {
            tape.save(x, gamma, beta, scaleShift);
            tape.record("groupNormAct", y, (gy, gr) -> FusedOpsBackward.groupNormAct(gy, gr, x, gamma, beta, scaleShift, silu,
                    means, rstd, n, c, groups, inner), x, gamma, beta, scaleShift);
        }
        return y;
    }

    /** Elements per activation block (scratch of this size stays in L1). */
    private static final int BLK = 512;

    /** y[o..o+len) = x[o..o+len) * a + b (same-index loop, vectorised by C2). */
    private static void affine(float[] x, float[] y, int o, int len, float a, float b) {
        for (int i = o; i < o + len; i++) y[i] = x[i] * a + b;
    }

    /**
     * y[o..o+len) = SiLU(y[o..o+len)) = y / (1 + exp(-y)), in blocks through the scratch arrays xs, e (BLK floats) and
     * bits (BLK ints). Every loop reads and writes its arrays at the same index (no offset between two float
     * arrays), so that C2 can rule out aliasing and vectorise it; exp is TransformerOps' block polynomial.
     */
    private static void siluInPlace(float[] y, int o, int len, float[] xs, float[] e, int[] bits) {
        for (int b0 = 0; b0 < len; b0 += BLK) {
            int q = o + b0, l = Math.min(BLK, len - b0);
            System.arraycopy(y, q, xs, 0, l);
            for (int i = 0; i < l; i++) e[i] = -xs[i];
            TransformerOps.expInPlace(e, 0, l, 0f, bits);
            for (int i = 0; i < l; i++) xs[i] = xs[i] / (1f + e[i]);
            System.arraycopy(xs, 0, y, q, l);
        }
    }

    /** Sum in float blocks of 1024 (eight accumulators), blocks accumulated in double. */
    private static double sum(float[] x, int o, int len) {
        double total = 0;
        for (int b0 = 0; b0 < len; b0 += 1024) total += TransformerOps.sum(x, o + b0, Math.min(1024, len - b0));
        return total;
    }

    private static double sumSqDev(float[] x, int o, int len, float mean) {
        double total = 0;
        for (int b0 = 0; b0 < len; b0 += 1024) total += TransformerOps.sumSqDev(x, o + b0, Math.min(1024, len - b0), mean);
        return total;
    }

    /** SiLU x * sigmoid(x) = x / (1 + exp(-x)) (exp as TransformerOps' block polynomial, relative error < 3e-7). */
    public static Tensor silu(Tensor x) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        System.arraycopy(xd, 0, yd, 0, xd.length);
        Parallel.forRange(xd.length, EW_CHUNK, (p, q) -> siluInPlace(yd, p, q - p, new float[BLK], new float[BLK], new int[BLK]));
        TransformerOps.recordActivation("silu", x, y, true);
        return y;
    }

    /**
     * The ResNet scale-shift conditioning alone: y[n, c] = x[n, c] * (1 + ss[n, c]) + ss[n, C + c]
     * (the slow twin of the fused path in {@link #groupNormAct}).
     */
    public static Tensor scaleShift(Tensor x, Tensor ss) {
        int n = x.dim(0), c = x.dim(1), inner = x.size() / Math.max(1, n * c);
        if (ss.size() != n * 2 * c) throw new IllegalArgumentException(
                "scaleShift: " + Arrays.toString(ss.shape()) + " for input " + Arrays.toString(x.shape()));
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data(), sd = ss.data();
        Parallel.forRange(n * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int img = r / c, ch = r % c, o = r * inner;
                float s1 = 1f + sd[img * 2 * c + ch], sh = sd[img * 2 * c + c + ch];
                for (int j = 0; j < inner; j++) yd[o + j] = xd[o + j] * s1 + sh;
            }
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(x, ss);
            tape.record("scaleShift", y, (gy, g) -> FusedOpsBackward.scaleShift(gy, g.of(x), g.of(ss), xd, sd, n, c, inner), x, ss);
        }
        return y;
    }

    // ------------------------------------------------------------------ element-wise

    /** In place: dst = (dst + src) / divisor (diffusers' {@code (input_tensor + hidden_states) / output_scale_factor}). */
    public static void residualAddInPlace(Tensor dst, Tensor src, float divisor) {
        if (!dst.sameShape(src)) throw new IllegalArgumentException("residual add: shapes " + Arrays.toString(dst.shape())
                + " and " + Arrays.toString(src.shape()) + " differ");
        float[] d = dst.data(), s = src.data();
        Tape tape = Tape.active();
        if (tape != null) tape.recordInPlace("residualAddInPlace", dst, (gy, g) -> {
            // dst_new = (dst_old + src) / divisor: both get gy / divisor
            float inv = 1f / divisor;
            float[] gs = g.of(src);
            if (gs == gy) { OpsBackward.axpy(1f, gy, gy); gs = null; }  // src is dst: twice the gradient
            if (gs != null) OpsBackward.axpy(inv, gy, gs);
            if (divisor != 1f) for (int i = 0; i < gy.length; i++) gy[i] *= inv;
        }, src);
        Parallel.forRange(d.length, EW_CHUNK, (a, b) -> {
            if (divisor == 1f) for (int i = a; i < b; i++) d[i] += s[i];
            else for (int i = a; i < b; i++) d[i] = (d[i] + s[i]) / divisor;
        });
    }

    /** y = x * a + b element-wise, computed as two roundings like PyTorch's {@code a * x + b}. */
    public static Tensor affine(Tensor x, float a, float b) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(xd.length, EW_CHUNK, (p, q) -> { for (int i = p; i < q; i++) yd[i] = (a * xd[i]) + b; });
        Tape tape = Tape.active();
        if (tape != null) tape.record("affine", y, (gy, g) -> OpsBackward.axpy(a, gy, g.of(x)), x);
        return y;
    }

    /** y[n, ...] = x[n, ...] / d[n]. */
    public static Tensor divPerSample(Tensor x, float[] d) {
        int n = x.dim(0);
        if (d.length != n) throw new IllegalArgumentException("divPerSample: " + d.length + " divisors for batch " + n);
        Tensor y = Tensor.zeros(x.shape());
        int inner = x.size() / Math.max(1, n);
        float[] xd = x.data(), yd = y.data();
        for (int i = 0; i < n; i++) for (int j = 0; j < inner; j++) yd[i * inner + j] = xd[i * inner + j] / d[i];
        Tape tape = Tape.active();
        if (tape != null) {
            float[] dv = d.clone();
            tape.record("divPerSample", y, (gy, g) -> {
                float[] gx = g.of(x);
                if (gx != null) for (int i = 0; i < n; i++) for (int j = 0; j < inner; j++) gx[i * inner + j] += gy[i * inner + j] / dv[i];
            }, x);
        }
        return y;
    }

    // ------------------------------------------------------------------ layout

    /** [B, R, C] -> [B, C, R] (e.g. NCHW viewed as [N, C, HW] to tokens [N, HW, C] and back), cache-blocked. */
    public static Tensor transposeLast2(Tensor x) {
        if (x.rank() != 3) throw new IllegalArgumentException("transposeLast2: expected rank 3, got " + Arrays.toString(x.shape()));
        int bsz = x.dim(0), r = x.dim(1), c = x.dim(2);
        Tensor y = Tensor.zeros(bsz, c, r);
        float[] xd = x.data(), yd = y.data();
        final int tile = 32;
        int tr = (r + tile - 1) / tile, tc = (c + tile - 1) / tile;
        Parallel.forRange(bsz * tr, Math.max(1, EW_CHUNK / Math.max(1, tile * c)), (t0, t1) -> {
            for (int t = t0; t < t1; t++) {
                int bi = t / tr, i0 = (t % tr) * tile, i1 = Math.min(r, i0 + tile);
                int xo = bi * r * c, yo = bi * c * r;
                for (int jt = 0; jt < tc; jt++) {
                    int j0 = jt * tile, j1 = Math.min(c, j0 + tile);
                    for (int i = i0; i < i1; i++)
                        for (int j = j0; j < j1; j++) yd[yo + j * r + i] = xd[xo + i * c + j];
                }
            }
        });
        Tape tape = Tape.active();
        if (tape != null) tape.record("transposeLast2", y, (gy, g) -> FusedOpsBackward.transposeLast2(gy, g.of(x), bsz, r, c), x);
        return y;
    }

    // ------------------------------------------------------------------ attention

    /**
     * Multi-head self-attention on the token layout, as diffusers' AttnProcessor:
     * q [N, T, heads*d], k/v [N, S, heads*d] -> softmax(q_h k_h^T * scale) v_h, result [N, T, heads*d].
     * Head h is the column block [h*d, (h+1)*d). Fast twin of {@link #attentionScores} + softmax + {@link #attentionValues}.
     */
    public static Tensor multiHeadAttention(Tensor q, Tensor k, Tensor v, int heads, float scale) {
        int[] dims = checkAttention(q, k, v, heads);
        int n = dims[0], t = dims[1], s = dims[2], inner = dims[3], d = inner / heads;
        Tensor out = Tensor.zeros(n, t, inner);
        if (t == 0 || s == 0) return out;
        float[] qd = q.data(), kd = k.data(), vd = v.data(), od = out.data();
        Blas blas = Blas.get();
        Tape tape = Tape.active();
        // under a tape the probabilities are kept for backward (no recomputation of q k^T and the softmax) unless large
        boolean keep = tape != null && (long) n * heads * t * s <= maxSavedProbs;
        float[] probs = keep ? new float[n * heads * t * s] : null;
        boolean nat = NativeFused.available();
        gemmTasks(n * heads, (i0, i1) -> {
            float[] p = keep ? null : new float[t * s];
            MemorySegment ps = nat ? nativeScratch(NSLOT_OUT, (long) t * s) : null;
            for (int i = i0; i < i1; i++) {
                int b = i / heads, h = i % heads, qo = b * t * inner + h * d, ko = b * s * inner + h * d;
                if (ps != null && nativeHead(qd, kd, vd, od, qo, ko, inner, t, s, d, scale, ps, probs, i * t * s)) continue;
                float[] pp = keep ? probs : p;
                int po = keep ? i * t * s : 0;
                blas.sgemm(false, true, t, s, d, scale, qd, qo, inner, kd, ko, inner, 0f, pp, po, s);
                TransformerOps.softmaxRows(pp, po, t, s);
                blas.sgemm(false, false, t, d, s, 1f, pp, po, s, vd, ko, inner, 0f, od, qo, inner);
            }
        });
        if (tape != null) {
            tape.save(q, k, v);
            tape.record("multiHeadAttention", out, (gy, g) -> {
                float[] gq = g.of(q), gk = g.of(k), gv = g.of(v);
                if (gq == null && gk == null && gv == null) return;
                gemmTasks(n * heads, (j0, j1) -> { // (sample, head) pairs own disjoint column blocks
                    float[] pp = keep ? null : new float[t * s], dp = new float[t * s];
                    for (int j = j0; j < j1; j++) {
                        int i = j / heads, h = j % heads;
                        int qo = i * t * inner + h * d, ko = i * s * inner + h * d;
                        if (keep) FusedOpsBackward.attentionHeadFromProbs(qd, qo, inner, kd, ko, inner, vd, ko, inner, gy, qo, inner,
                                gq, gk, gv, t, s, d, scale, probs, j * t * s, dp);
                        else FusedOpsBackward.attentionHead(qd, qo, inner, kd, ko, inner, vd, ko, inner, gy, qo, inner,
                                gq, gk, gv, t, s, d, scale, pp, dp);
                    }
                });
            }, q, k, v);
        }
        return out;
    }

    /**
     * One head of {@link #multiHeadAttention} with the probabilities in native memory ps (oneDNN softmax: vectorised exp),
     * copied to probs[po ...] when probs is non-null. False when the native path is (or was switched) off midway: the
     * caller recomputes the head in Java.
     */
    private static boolean nativeHead(float[] qd, float[] kd, float[] vd, float[] od, int qo, int ko, int inner, int t, int s,
                                      int d, float scale, MemorySegment ps, float[] probs, int po) {
        MemorySegment q = MemorySegment.ofArray(qd), k = MemorySegment.ofArray(kd), v = MemorySegment.ofArray(vd);
        if (!DnnlBlas.sgemmSegments(false, true, t, s, d, scale, q.asSlice(4L * qo), inner, k.asSlice(4L * ko), inner, 0f, ps, s)
                || !DnnlPrimitives.softmaxRows(ps, t, s)) return false;
        if (probs != null) MemorySegment.copy(ps, F32, 0, probs, po, t * s);
        return DnnlBlas.sgemmSegments(false, false, t, d, s, 1f, ps, s, v.asSlice(4L * ko), inner, 0f,
                MemorySegment.ofArray(od).asSlice(4L * qo), inner);
    }

    /**
     * Most attention probabilities (floats) that {@link #multiHeadAttention} keeps for its backward pass under a tape
     * (2^25 = 128 MiB); larger ones are recomputed there. Package-private for tests.
     */
    static long maxSavedProbs = 1L << 25;

    /** Attention logits per head: [N, heads, T, S] = q_h k_h^T * scale (explicit path; see {@link #multiHeadAttention}). */
    public static Tensor attentionScores(Tensor q, Tensor k, int heads, float scale) {
        int[] dims = checkAttention(q, k, k, heads);
        int n = dims[0], t = dims[1], s = dims[2], inner = dims[3], d = inner / heads;
        Tensor sc = Tensor.zeros(n, heads, t, s);
        float[] qd = q.data(), kd = k.data(), sd = sc.data();
        Blas blas = Blas.get();
        gemmTasks(n * heads, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                int b = i / heads, h = i % heads;
                blas.sgemm(false, true, t, s, d, scale, qd, b * t * inner + h * d, inner, kd, b * s * inner + h * d, inner,
                        0f, sd, i * t * s, s);
            }
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(q, k);
            tape.record("attentionScores", sc, (gy, g) -> FusedOpsBackward.scores(gy, g.of(q), g.of(k), qd, kd, n * heads, t, s, d,
                    scale, i -> (i / heads) * t * inner + (i % heads) * d, inner, i -> (i / heads) * s * inner + (i % heads) * d, inner), q, k);
        }
        return sc;
    }

    /** Weighted values per head: probabilities [N, heads, T, S], v [N, S, heads*d] -> [N, T, heads*d]. */
    public static Tensor attentionValues(Tensor probs, Tensor v, int heads) {
        if (probs.rank() != 4 || v.rank() != 3 || probs.dim(0) != v.dim(0) || probs.dim(1) != heads || probs.dim(3) != v.dim(1)
                || v.dim(2) % heads != 0) throw new IllegalArgumentException("attentionValues: probabilities "
                + Arrays.toString(probs.shape()) + " and values " + Arrays.toString(v.shape()) + " with " + heads + " heads");
        int n = v.dim(0), t = probs.dim(2), s = v.dim(1), inner = v.dim(2), d = inner / heads;
        Tensor out = Tensor.zeros(n, t, inner);
        float[] pd = probs.data(), vd = v.data(), od = out.data();
        Blas blas = Blas.get();
        gemmTasks(n * heads, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                int b = i / heads, h = i % heads;
                blas.sgemm(false, false, t, d, s, 1f, pd, i * t * s, s, vd, b * s * inner + h * d, inner,
                        0f, od, b * t * inner + h * d, inner);
            }
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(probs, v);
            tape.record("attentionValues", out, (gy, g) -> FusedOpsBackward.apply(gy, g.of(probs), g.of(v), pd, vd, n * heads, t, s, d,
                    i -> (i / heads) * s * inner + (i % heads) * d, inner, i -> (i / heads) * t * inner + (i % heads) * d, inner), probs, v);
        }
        return out;
    }

    /**
     * Runs body over [0, n) independent GEMM tasks: spread over the engine's pool with oneDNN single-threaded in
     * each worker when that can be controlled, else one after the other on the caller (oneDNN's own threads).
     */
    private static void gemmTasks(int n, Parallel.RangeBody body) {
        if (Parallel.threads() == 1 || n <= 1) body.run(0, n);
        else if (!(Blas.get() instanceof DnnlBlas)) Parallel.forRange(n, 1, body);
        else if (NativeThreads.available()) Parallel.forRange(n, 1, (a, b) -> NativeThreads.singleThreaded(() -> body.run(a, b)));
        else body.run(0, n);
    }

    private static int[] checkAttention(Tensor q, Tensor k, Tensor v, int heads) {
        if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3 || heads < 1 || q.dim(2) % heads != 0
                || k.dim(2) != q.dim(2) || v.dim(2) != q.dim(2) || k.dim(0) != q.dim(0) || v.dim(0) != q.dim(0)
                || v.dim(1) != k.dim(1)) throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape())
                + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()) + " with " + heads + " heads");
        return new int[] {q.dim(0), q.dim(1), k.dim(1), q.dim(2)};
    }

    /** Softmax over the last dimension into a new tensor (fast twin of {@link Ops#softmax}). */
    public static Tensor softmax(Tensor x) {
        Tensor y = Tensor.of(x.data().clone(), x.shape());
        int c = x.dim(-1);
        if (c > 0) TransformerOps.softmaxRows(y.data(), 0, y.size() / c, c);
        Tape tape = Tape.active();
        if (tape != null && c > 0) {
            tape.save(y);
            tape.record("softmax", y, (gy, g) -> OpsBackward.softmax(gy, g.of(x), y.data(), c), x);
        }
        return y;
    }

    // ------------------------------------------------------------------ embeddings

    /**
     * diffusers' GaussianFourierProjection (log = True, flip_sin_to_cos = False): x = log(t);
     * p = x * w * 2 * pi; result [N, 2D] = [sin(p), cos(p)]. t must be positive (noise levels).
     * A constant for autodiff (the projection weight is a fixed buffer, requires_grad=False in diffusers).
     */
    public static Tensor fourierEmbedding(float[] t, Tensor w) {
        int d = w.size();
        Tensor y = Tensor.zeros(t.length, 2 * d);
        float[] wd = w.data(), yd = y.data();
        float pi = (float) Math.PI;
        for (int i = 0; i < t.length; i++) {
            if (!(t[i] > 0f)) throw new IllegalArgumentException("fourier time embedding needs positive timesteps (noise levels), got " + t[i]);
            float lx = (float) Math.log(t[i]);
            for (int j = 0; j < d; j++) {
                float p = lx * wd[j] * 2f * pi;
                yd[i * 2 * d + j] = (float) Math.sin(p);
                yd[i * 2 * d + d + j] = (float) Math.cos(p);
            }
        }
        return y;
    }
}
