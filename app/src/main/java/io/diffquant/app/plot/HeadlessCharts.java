package io.diffquant.app.plot;

import io.diffquant.engine.io.AtomicFiles;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.AxisLocation;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.SymbolAxis;
import org.jfree.chart.axis.ValueAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.PaintScale;
import org.jfree.chart.renderer.xy.XYBarRenderer;
import org.jfree.chart.renderer.xy.XYBlockRenderer;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.chart.title.PaintScaleLegend;
import org.jfree.chart.title.TextTitle;
import org.jfree.chart.ui.RectangleEdge;
import org.jfree.chart.ui.RectangleInsets;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.DefaultXYZDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Paint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * PNG charts without JavaFX or a display (JFreeChart rendered into a BufferedImage, {@code java.awt.headless=true}):
 * line charts with an optional log y axis, heatmaps with a colour legend, bar charts and histograms with grid-point
 * overlays. Files are written atomically. Used by the CLI's {@code analyze}; the GUI draws the same data live.
 */
public final class HeadlessCharts {
    private HeadlessCharts() {}

    /** One line of a line chart; non-finite points (and non-positive ones on a log axis) are left out. */
    public record Series(String name, double[] x, double[] y) {
        public Series {
            if (x.length != y.length) throw new IllegalArgumentException("series '" + name + "': " + x.length + " x values, " + y.length + " y values");
        }
    }

    private static final Color[] LINE_COLORS = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c), new Color(0xff7f0e),
            new Color(0x9467bd), new Color(0x8c564b), new Color(0xe377c2), new Color(0x7f7f7f), new Color(0xbcbd22), new Color(0x17becf)};

    /** Viridis anchors (matplotlib), interpolated linearly. */
    private static final Color[] VIRIDIS = {new Color(0x440154), new Color(0x414487), new Color(0x2a788e), new Color(0x22a884),
            new Color(0x7ad151), new Color(0xfde725)};

    static {
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }

    public static void lineChart(Path png, String title, String xLabel, String yLabel, boolean logY, List<Series> series, String subtitle)
            throws IOException {
        lineChart(png, title, xLabel, yLabel, false, logY, series, subtitle);
    }

    /** A line chart with optional log axes (points at x <= 0 are left out on a log x axis). */
    public static void lineChart(Path png, String title, String xLabel, String yLabel, boolean logX, boolean logY, List<Series> series,
                                 String subtitle) throws IOException {
        XYSeriesCollection ds = new XYSeriesCollection();
        boolean any = false;
        for (Series s : series) {
            XYSeries xs = new XYSeries(s.name(), false, true);
            for (int i = 0; i < s.x().length; i++) {
                double y = s.y()[i];
                if (!Double.isFinite(y) || !Double.isFinite(s.x()[i]) || (logY && y <= 0) || (logX && s.x()[i] <= 0)) continue;
                xs.add(s.x()[i], y);
                any = true;
            }
            ds.addSeries(xs);
        }
        JFreeChart chart = ChartFactory.createXYLineChart(title, xLabel, yLabel, ds, PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = chart.getXYPlot();
        style(chart, plot);
        if (logY && any) plot.setRangeAxis(logAxis(yLabel, ds));
        XYLineAndShapeRenderer r = new XYLineAndShapeRenderer(true, true);
        for (int i = 0; i < series.size(); i++) {
            r.setSeriesPaint(i, LINE_COLORS[i % LINE_COLORS.length]);
            r.setSeriesStroke(i, new BasicStroke(2f));
            r.setSeriesShape(i, new java.awt.geom.Ellipse2D.Double(-2.5, -2.5, 5, 5));
        }
        plot.setRenderer(r);
        if (logX && any) {
            LogAxis x = new LogAxis(xLabel + " (log)");
            x.setSmallestValue(1e-30);
            x.setNumberFormatOverride(new java.text.DecimalFormat("0.###"));
            plot.setDomainAxis(x);
        } else {
            ((NumberAxis) plot.getDomainAxis()).setAutoRangeIncludesZero(false);
        }
        if (subtitle != null && !subtitle.isBlank()) chart.addSubtitle(new TextTitle(subtitle, new Font(Font.SANS_SERIF, Font.PLAIN, 11)));
        write(png, chart, 1000, 620);
    }

    /**
     * A heatmap of z[row][column].
     * @param columns labels of the columns (x), rows labels of the rows (y, first row at the top)
     * @param logColor colour by log10(z) (non-positive cells drawn in the lowest colour)
     */
    public static void heatmap(Path png, String title, String xLabel, String[] columns, String yLabel, String[] rows, double[][] z,
                               boolean logColor, String colorLabel, String subtitle) throws IOException {
        int nr = z.length, nc = nr == 0 ? 0 : z[0].length;
        if (rows.length != nr || columns.length != nc) throw new IllegalArgumentException("heatmap '" + title + "': " + nr + "x" + nc
                + " values but " + rows.length + " row and " + columns.length + " column labels");
        double[] xs = new double[nr * nc], ys = new double[nr * nc], zs = new double[nr * nc];
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY, minPos = Double.POSITIVE_INFINITY;
        for (double[] r : z) for (double v : r) if (Double.isFinite(v) && v > 0) minPos = Math.min(minPos, v);
        for (int i = 0; i < nr; i++) {
            for (int j = 0; j < nc; j++) {
                int p = i * nc + j;
                xs[p] = j;
                ys[p] = nr - 1 - i;
                double v = z[i][j];
                if (logColor) v = v > 0 && Double.isFinite(v) ? Math.log10(v) : (Double.isFinite(minPos) ? Math.log10(minPos) : 0);
                zs[p] = Double.isFinite(v) ? v : Double.NaN;
                if (Double.isFinite(v)) {
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                }
            }
        }
        if (!(lo <= hi)) { lo = 0; hi = 1; }
        if (lo == hi) { lo -= 0.5; hi += 0.5; }
        DefaultXYZDataset ds = new DefaultXYZDataset();
        ds.addSeries("z", new double[][] {xs, ys, zs});
        String[] revRows = new String[nr];
        for (int i = 0; i < nr; i++) revRows[i] = rows[nr - 1 - i];
        XYPlot plot = new XYPlot(ds, axis(xLabel, columns, 14), axis(yLabel, revRows, 40), null);
        XYBlockRenderer r = new XYBlockRenderer();
        Viridis scale = new Viridis(lo, hi);
        r.setPaintScale(scale);
        plot.setRenderer(r);
        plot.setBackgroundPaint(Color.LIGHT_GRAY);
        plot.setDomainGridlinesVisible(false);
        plot.setRangeGridlinesVisible(false);
        plot.setAxisOffset(RectangleInsets.ZERO_INSETS);
        JFreeChart chart = new JFreeChart(title, new Font(Font.SANS_SERIF, Font.BOLD, 15), plot, false);
        chart.setBackgroundPaint(Color.WHITE);
        NumberAxis legendAxis = new NumberAxis(logColor ? "log10 " + colorLabel : colorLabel);
        legendAxis.setRange(lo, hi);
        PaintScaleLegend legend = new PaintScaleLegend(scale, legendAxis);
        legend.setPosition(RectangleEdge.RIGHT);
        legend.setAxisLocation(AxisLocation.TOP_OR_RIGHT);
        legend.setMargin(new RectangleInsets(5, 5, 5, 5));
        legend.setStripWidth(14);
        chart.addSubtitle(legend);
        if (subtitle != null && !subtitle.isBlank()) chart.addSubtitle(new TextTitle(subtitle, new Font(Font.SANS_SERIF, Font.PLAIN, 11)));
        int longest = 0;
        for (String s : rows) longest = Math.max(longest, s.length());
        int width = Math.max(700, Math.min(1800, 260 + 7 * longest + 16 * nc));
        int height = Math.max(420, Math.min(2400, 180 + 16 * nr));
        write(png, chart, width, height);
    }

    /** A horizontal bar chart of one value per category. */
    public static void barChart(Path png, String title, String categoryLabel, String valueLabel, boolean logValue, String[] categories,
                                double[] values, String subtitle) throws IOException {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (int i = 0; i < categories.length; i++) {
            double v = values[i];
            ds.addValue(Double.isFinite(v) && (!logValue || v > 0) ? v : null, valueLabel, categories[i]);
        }
        JFreeChart chart = ChartFactory.createBarChart(title, categoryLabel, valueLabel, ds, PlotOrientation.HORIZONTAL, false, false, false);
        CategoryPlot plot = chart.getCategoryPlot();
        chart.setBackgroundPaint(Color.WHITE);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        plot.getRenderer().setSeriesPaint(0, LINE_COLORS[0]);
        ((org.jfree.chart.renderer.category.BarRenderer) plot.getRenderer()).setBarPainter(new org.jfree.chart.renderer.category.StandardBarPainter());
        ((org.jfree.chart.renderer.category.BarRenderer) plot.getRenderer()).setShadowVisible(false);
        if (logValue) {
            double lo = Double.POSITIVE_INFINITY, hi = 0;
            for (double v : values) if (Double.isFinite(v) && v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
            plot.setRangeAxis(logAxis(valueLabel, lo, hi));
        }
        if (subtitle != null && !subtitle.isBlank()) chart.addSubtitle(new TextTitle(subtitle, new Font(Font.SANS_SERIF, Font.PLAIN, 11)));
        write(png, chart, 1000, Math.max(420, Math.min(2400, 160 + 18 * categories.length)));
    }

    /**
     * A histogram of equal-width bins over [lo, hi] with vertical lines at the grid points (at most {@code maxGridLines};
     * denser grids are named in the subtitle instead of drawn).
     */
    public static void histogram(Path png, String title, String xLabel, double lo, double hi, long[] counts, float[] grid, String subtitle,
                                 boolean logCounts) throws IOException {
        XYSeriesCollection ds = new XYSeriesCollection();
        XYSeries s = new XYSeries("count", false, true);
        double w = (hi - lo) / counts.length;
        for (int b = 0; b < counts.length; b++) if (!logCounts || counts[b] > 0) s.add(lo + (b + 0.5) * w, counts[b]);
        ds.addSeries(s);
        ds.setIntervalWidth(w);
        JFreeChart chart = ChartFactory.createXYBarChart(title, xLabel, false, "count", ds, PlotOrientation.VERTICAL, false, false, false);
        XYPlot plot = chart.getXYPlot();
        style(chart, plot);
        XYBarRenderer r = (XYBarRenderer) plot.getRenderer();
        r.setBarPainter(new org.jfree.chart.renderer.xy.StandardXYBarPainter());
        r.setShadowVisible(false);
        r.setSeriesPaint(0, new Color(0x1f77b4));
        r.setUseYInterval(false);
        if (logCounts && s.getItemCount() > 0) {
            LogAxis axis = new LogAxis("count (log)");
            axis.setSmallestValue(0.5);
            plot.setRangeAxis(axis);
            r.setBase(0.5);
        }
        int maxGridLines = 64;
        String sub = subtitle == null ? "" : subtitle;
        if (grid != null && grid.length > 0) {
            if (grid.length <= maxGridLines) {
                for (float g : grid) {
                    ValueMarker m = new ValueMarker(g, new Color(214, 39, 40, 170), new BasicStroke(1f));
                    plot.addDomainMarker(m);
                }
                sub += (sub.isEmpty() ? "" : "; ") + grid.length + " grid points (red)";
            } else {
                sub += (sub.isEmpty() ? "" : "; ") + grid.length + " grid points in [" + grid[0] + ", " + grid[grid.length - 1] + "] (too dense to draw)";
            }
            double gl = Math.min(lo, grid[0]), gh = Math.max(hi, grid[grid.length - 1]);
            double pad = 0.02 * (gh - gl);
            plot.getDomainAxis().setRange(gl - pad, gh + pad);
        }
        if (!sub.isBlank()) chart.addSubtitle(new TextTitle(sub, new Font(Font.SANS_SERIF, Font.PLAIN, 11)));
        write(png, chart, 1000, 560);
    }

    /** A log axis over the positive y values of a dataset. */
    private static LogAxis logAxis(String label, XYSeriesCollection ds) {
        double lo = Double.POSITIVE_INFINITY, hi = 0;
        for (int s = 0; s < ds.getSeriesCount(); s++) {
            for (int i = 0; i < ds.getItemCount(s); i++) {
                double v = ds.getYValue(s, i);
                if (v > 0 && Double.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
            }
        }
        return logAxis(label, lo, hi);
    }

    /**
     * A log axis labelled in scientific notation; over two decades or more the ticks sit on whole powers of ten (every
     * k-th so that there are at most 10).
     */
    private static LogAxis logAxis(String label, double lo, double hi) {
        LogAxis axis = new LogAxis(label + " (log)");
        axis.setSmallestValue(1e-30);
        axis.setNumberFormatOverride(new java.text.DecimalFormat("0.##E0"));
        if (lo > 0 && hi > lo) {
            double decades = Math.log10(hi / lo);
            if (decades >= 2) axis.setTickUnit(new org.jfree.chart.axis.NumberTickUnit(Math.max(1, Math.ceil(decades / 10))));
        }
        return axis;
    }

    /** A category axis: every label when there are at most {@code maxTicks}, else every k-th. */
    private static ValueAxis axis(String label, String[] ticks, int maxTicks) {
        if (ticks.length <= maxTicks) {
            SymbolAxis a = new SymbolAxis(label, ticks);
            a.setGridBandsVisible(false);
            a.setTickLabelFont(new Font(Font.SANS_SERIF, Font.PLAIN, ticks.length > 24 ? 9 : 11));
            a.setRange(-0.5, ticks.length - 0.5);
            return a;
        }
        NumberAxis a = new NumberAxis(label);
        a.setRange(-0.5, ticks.length - 0.5);
        int every = (ticks.length + maxTicks - 1) / maxTicks;
        a.setTickUnit(new org.jfree.chart.axis.NumberTickUnit(every, new IndexLabels(ticks)));
        return a;
    }

    private static void style(JFreeChart chart, XYPlot plot) {
        chart.setBackgroundPaint(Color.WHITE);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
    }

    private static void write(Path png, JFreeChart chart, int w, int h) throws IOException {
        AtomicFiles.writeStream(png, os -> ChartUtils.writeChartAsPNG(os, chart, w, h));
    }

    /** Tick labels of an index axis: the label of each whole index, nothing between. */
    private static final class IndexLabels extends java.text.NumberFormat {
        private final String[] labels;

        IndexLabels(String[] labels) { this.labels = labels.clone(); }

        @Override public StringBuffer format(double v, StringBuffer to, java.text.FieldPosition pos) {
            long i = Math.round(v);
            if (Math.abs(v - i) < 1e-6 && i >= 0 && i < labels.length) to.append(labels[(int) i]);
            return to;
        }

        @Override public StringBuffer format(long v, StringBuffer to, java.text.FieldPosition pos) { return format((double) v, to, pos); }

        @Override public Number parse(String source, java.text.ParsePosition pos) { return null; }
    }

    /** The viridis colour map over [lo, hi]. */
    private record Viridis(double lo, double hi) implements PaintScale {
        @Override public double getLowerBound() { return lo; }
        @Override public double getUpperBound() { return hi; }

        @Override public Paint getPaint(double v) {
            if (Double.isNaN(v)) return Color.LIGHT_GRAY;
            double f = (v - lo) / (hi - lo);
            f = Math.max(0, Math.min(1, f)) * (VIRIDIS.length - 1);
            int i = Math.min(VIRIDIS.length - 2, (int) f);
            double a = f - i;
            Color c0 = VIRIDIS[i], c1 = VIRIDIS[i + 1];
            return new Color((int) Math.round(c0.getRed() + a * (c1.getRed() - c0.getRed())),
                    (int) Math.round(c0.getGreen() + a * (c1.getGreen() - c0.getGreen())),
                    (int) Math.round(c0.getBlue() + a * (c1.getBlue() - c0.getBlue())));
        }
    }
}
