package io.diffquant.engine.quant.format;

import java.util.Arrays;

/**
 * The map from the elements of a tensor to parameter groups, for one {@link Granularity} and {@link Layout}.
 * The tensor is viewed as a row-major matrix [rows, cols]; each row is cut into {@link #segmentsPerRow()}
 * segments of {@link #segmentLength()} columns (the last one may be shorter), and segment s of row r belongs
 * to group {@code r * rowStride + s}. Every granularity of ALGORITHMS.md §4 has this form:
 * <pre>
 *   tensor            segLen = cols, 1 segment,      rowStride 0   -> 1 group
 *   channel (WEIGHT)  segLen = cols, 1 segment,      rowStride 1   -> rows groups
 *   channel (ACT.)    segLen = 1,    cols segments,  rowStride 0   -> cols groups
 *   token             segLen = cols, 1 segment,      rowStride 1   -> rows groups
 *   group g / block b segLen = g,    ceil(cols/g),   rowStride = segments per row
 *   head h            segLen = cols/h, h segments,   rowStride 0   -> h groups
 * </pre>
 */
public final class GroupView {
    private final Granularity granularity;
    private final Layout layout;
    private final int[] shape;
    private final int rows, cols, segLen, segsPerRow, rowStride, groups;

    public GroupView(Granularity granularity, Layout layout, int[] shape) {
        if (granularity == null || layout == null || shape == null) throw new IllegalArgumentException("granularity, layout and shape are required");
        this.granularity = granularity;
        this.layout = layout;
        this.shape = shape.clone();
        this.rows = layout.rows(shape);
        this.cols = layout.cols(shape);
        int sl, spr, rs;
        switch (granularity) {
            case Granularity.PerTensor t -> { sl = cols; spr = 1; rs = 0; }
            case Granularity.PerChannel c -> {
                if (layout == Layout.WEIGHT) { sl = cols; spr = 1; rs = 1; }
                else { sl = 1; spr = cols; rs = 0; }
            }
            case Granularity.PerToken t -> { sl = cols; spr = 1; rs = 1; }
            case Granularity.PerGroup g -> { sl = g.size(); spr = ceilDiv(cols, g.size()); rs = spr; }
            case Granularity.PerBlock b -> { sl = b.size(); spr = ceilDiv(cols, b.size()); rs = spr; }
            case Granularity.PerHead h -> {
                if (cols % h.heads() != 0) throw new IllegalArgumentException("granularity " + h.id() + ": the channel dim "
                        + cols + " of shape " + Arrays.toString(shape) + " is not divisible by " + h.heads() + " heads");
                sl = cols / h.heads(); spr = h.heads(); rs = 0;
            }
        }
        this.segLen = Math.max(sl, 1);
        this.segsPerRow = cols == 0 ? 0 : spr;
        this.rowStride = rs;
        long g = rs == 0 ? Math.max(spr, 1) : (long) rows * rs;
        if (g > Integer.MAX_VALUE) throw new IllegalArgumentException("too many groups for shape " + Arrays.toString(shape));
        this.groups = (int) Math.max(g, 1);
    }

    private static int ceilDiv(int a, int b) { return (a + b - 1) / b; }

    public Granularity granularity() { return granularity; }
    public Layout layout() { return layout; }
    public int[] shape() { return shape.clone(); }
    public int rows() { return rows; }
    public int cols() { return cols; }
    public int size() { return rows * cols; }
    /** Number of parameter groups. */
    public int groups() { return groups; }
    public int segmentsPerRow() { return segsPerRow; }
    public int segmentLength() { return segLen; }
    /** 0 when a group spans several rows (tensor, head, activation channel), else segments per row. */
    public int rowStride() { return rowStride; }

    /** True when no group spans two rows, so rows can be processed independently. */
    public boolean rowsIndependent() { return rowStride != 0; }

    /** Group of segment s in row r. */
    public int group(int row, int seg) { return row * rowStride + seg; }

    /** First column of segment s. */
    public int segmentStart(int seg) { return seg * segLen; }

    /** Length of segment s (the last one of a row may be shorter). */
    public int segmentLength(int seg) { return Math.min(segLen, cols - seg * segLen); }

    /** Group of the element at a row-major flat index. */
    public int groupOf(int flatIndex) {
        int r = flatIndex / cols, c = flatIndex - r * cols;
        return group(r, c / segLen);
    }

    /** Number of elements in group g. */
    public int groupSize(int g) {
        if (rowStride == 0) {
            // group = segment index, present in every row
            return rows * segmentLength(g);
        }
        return segmentLength(g % rowStride);
    }

    /** Copies the elements of group g (in row-major order) into a new array. */
    public float[] gather(float[] data, int g) {
        float[] out = new float[groupSize(g)];
        int k = 0;
        if (rowStride == 0) {
            int c0 = segmentStart(g), len = segmentLength(g);
            for (int r = 0; r < rows; r++) {
                System.arraycopy(data, r * cols + c0, out, k, len);
                k += len;
            }
        } else {
            int r = g / rowStride, s = g % rowStride;
            System.arraycopy(data, r * cols + segmentStart(s), out, 0, out.length);
        }
        return out;
    }

    @Override public String toString() {
        return "GroupView[" + granularity.id() + ", " + layout + ", " + Arrays.toString(shape) + " -> " + groups + " groups]";
    }
}
