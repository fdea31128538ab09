package io.diffquant.app.gui.charts;

import io.diffquant.app.gui.vm.Heatmaps;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.SymbolAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.PaintScale;
import org.jfree.chart.renderer.category.BarRenderer;
import org.jfree.chart.renderer.category.StandardBarPainter;
import org.jfree.chart.renderer.xy.StandardXYBarPainter;
import org.jfree.chart.renderer.xy.XYBarRenderer;
import org.jfree.chart.renderer.xy.XYBlockRenderer;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.chart.title.PaintScaleLegend;
import org.jfree.chart.ui.RectangleEdge;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.DefaultXYZDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Paint;
import java.util.List;

/**
 * The studio's plots as JFreeChart charts built from plain data (no JavaFX): the views show them in a
 * {@code ChartViewer} and update their datasets, the exporter builds the same charts from the same data and writes them
 * as PNG and SVG ({@link ChartFiles}). One look for every chart: white plot, light grid, the studio's series colours.
 */
public final class StudioCharts {
    /** Series colours (colour-blind friendly: Okabe-Ito). */
    public static final Color[] COLORS = {new Color(0, 114, 178), new Color(213, 94, 0), new Color(0, 158, 115), new Color(204, 121, 167),
            new Color(230, 159, 0), new Color(86, 180, 233), new Color(0, 0, 0), new Color(240, 228, 66)};
    public static final Color GRID = new Color(222, 222, 222);
    public static final Color BACKGROUND = new Color(244, 244, 244);

    private StudioCharts() {}

    /** A named x/y series. */
    public record Series(String name, double[] x, double[] y) {
        public Series {
            if (x.length != y.length) throw new IllegalArgumentException("series '" + name + "': " + x.length + " x values, " + y.length + " y values");
            x = x.clone();
            y = y.clone();
        }
    }

    /** A line chart (points marked) with an optional logarithmic y axis. */
    public static JFreeChart lines(String title, String xLabel, String yLabel, boolean logY) { return lines(title, xLabel, yLabel, logY, false); }

    /** A line chart with optional logarithmic axes (e.g. λ over decades). */
    public static JFreeChart lines(String title, String xLabel, String yLabel, boolean logY, boolean logX) {
        JFreeChart c = ChartFactory.createXYLineChart(title, xLabel, yLabel, new XYSeriesCollection(), PlotOrientation.VERTICAL, true, true, false);
        XYPlot p = c.getXYPlot();
        style(c);
        XYLineAndShapeRenderer r = new XYLineAndShapeRenderer(true, true);
        for (int i = 0; i < COLORS.length; i++) {
            r.setSeriesPaint(i, COLORS[i]);
            r.setSeriesStroke(i, new BasicStroke(1.8f));
        }
        p.setRenderer(r);
        p.setSeriesRenderingOrder(org.jfree.chart.plot.SeriesRenderingOrder.FORWARD);   // later series (the current config) on top
        if (logY) {
            LogAxis axis = new LogAxis(yLabel);
            axis.setSmallestValue(1e-12);
            axis.setAutoRange(true);
            p.setRangeAxis(axis);
        }
        if (logX) {
            LogAxis axis = new LogAxis(xLabel);
            axis.setSmallestValue(1e-12);
            p.setDomainAxis(axis);
        } else {
            ((NumberAxis) p.getDomainAxis()).setAutoRangeIncludesZero(false);
        }
        return c;
    }

    /**
     * Runs {@code edit} (any number of dataset, marker or axis changes) with the chart's change events held back, then
     * fires one: a chart shown in a {@code ChartViewer} redraws on every change event, on the FX thread, so a dataset
     * swap plus a marker move would otherwise draw the chart three times.
     */
    public static void batch(JFreeChart chart, Runnable edit) {
        boolean notify = chart.isNotify();
        chart.setNotify(false);
        try {
            edit.run();
        } finally {
            chart.setNotify(notify);
        }
    }

    /** Replaces the series of an XY chart (non-positive values are left out on a log axis). */
    public static void setSeries(JFreeChart chart, List<Series> series) {
        XYPlot p = chart.getXYPlot();
        boolean log = p.getRangeAxis() instanceof LogAxis, logX = p.getDomainAxis() instanceof LogAxis;
        XYSeriesCollection ds = new XYSeriesCollection();
        for (Series s : series) {
            XYSeries xy = new XYSeries(s.name(), false, true);
            for (int i = 0; i < s.x().length; i++) {
                double y = s.y()[i];
                if (Double.isNaN(y) || Double.isInfinite(y) || (log && y <= 0) || (logX && s.x()[i] <= 0)) continue;
                xy.add(s.x()[i], y, false);
            }
            ds.addSeries(xy);
        }
        p.setDataset(ds);
    }

    /** The x̂_0 change per step of each run (nulls and repeated labels skipped), steps counted from 1. */
    public static List<Series> changeSeries(List<io.diffquant.app.gui.vm.GenerationResult> runs) {
        List<Series> s = new java.util.ArrayList<>();
        for (var r : runs) {
            if (r == null || r.stepsDone() == 0) continue;
            if (s.stream().anyMatch(x -> x.name().equals(r.label()))) continue;
            double[] ch = r.predX0Change();
            double[] x = new double[ch.length];
            for (int i = 0; i < ch.length; i++) x[i] = i + 1;
            s.add(new Series(r.label(), x, ch));
        }
        return s;
    }

    /** A vertical marker (e.g. the scrubbed step) on an XY chart, replacing the previous one. */
    public static void setDomainMarker(JFreeChart chart, double x) {
        XYPlot p = chart.getXYPlot();
        p.clearDomainMarkers();
        if (!Double.isNaN(x)) p.addDomainMarker(new ValueMarker(x, new Color(200, 60, 60), new BasicStroke(1.5f)));
    }

    /** A bar chart of one value per category (e.g. per-layer sensitivity), horizontal when there are many bars. */
    public static JFreeChart bars(String title, String categoryLabel, String valueLabel, List<String> names, double[] values, boolean horizontal) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (int i = 0; i < names.size(); i++) ds.addValue(values[i], valueLabel, names.get(i));
        JFreeChart c = ChartFactory.createBarChart(title, categoryLabel, valueLabel, ds,
                horizontal ? PlotOrientation.HORIZONTAL : PlotOrientation.VERTICAL, false, true, false);
        style(c);
        CategoryPlot p = c.getCategoryPlot();
        BarRenderer r = (BarRenderer) p.getRenderer();
        r.setBarPainter(new StandardBarPainter());
        r.setSeriesPaint(0, COLORS[0]);
        r.setShadowVisible(false);
        p.getDomainAxis().setTickLabelFont(new Font(Font.SANS_SERIF, Font.PLAIN, 9));
        return c;
    }

    /**
     * A histogram (bars from bin edges and counts) with vertical markers at the given grid points (the representable
     * values of a format), e.g. a weight distribution with its INT4 grid.
     */
    public static JFreeChart histogram(String title, String xLabel, double[] edges, long[] counts, double[] grid, String gridName, boolean logY) {
        XYSeries s = new XYSeries("count", false, true);
        for (int i = 0; i < counts.length; i++) s.add(0.5 * (edges[i] + edges[i + 1]), logY ? Math.max(counts[i], 0.5) : counts[i], false);
        XYSeriesCollection ds = new XYSeriesCollection(s);
        JFreeChart c = ChartFactory.createXYBarChart(title, xLabel, false, logY ? "count (log)" : "count", ds, PlotOrientation.VERTICAL,
                false, true, false);
        style(c);
        XYPlot p = c.getXYPlot();
        XYBarRenderer r = (XYBarRenderer) p.getRenderer();
        r.setBarPainter(new StandardXYBarPainter());
        r.setShadowVisible(false);
        r.setSeriesPaint(0, new Color(120, 144, 176));
        r.setMargin(0.05);
        if (logY) {
            LogAxis axis = new LogAxis("count (log)");
            axis.setSmallestValue(0.5);
            p.setRangeAxis(axis);
        }
        if (grid != null) {
            Color gc = new Color(213, 94, 0, 170);
            for (double g : grid) p.addDomainMarker(new ValueMarker(g, gc, new BasicStroke(0.8f)));
            if (gridName != null) c.addSubtitle(new org.jfree.chart.title.TextTitle(gridName + ": " + grid.length + " grid points (orange)",
                    new Font(Font.SANS_SERIF, Font.PLAIN, 10)));
        }
        return c;
    }

    /**
     * A heatmap of z[row][col] on the studio's colour scale (0 to max), with row names on the y axis and column values
     * on the x axis (e.g. layer x timestep, feature x timestep).
     */
    public static JFreeChart heatmap(String title, String xLabel, String yLabel, double[][] z, String[] rowNames, double[] colValues,
                                     String valueLabel) {
        int rows = z.length, cols = rows == 0 ? 0 : z[0].length;
        double[] xs = new double[rows * cols], ys = new double[rows * cols], zs = new double[rows * cols];
        double max = 0;
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) {
            int k = i * cols + j;
            xs[k] = j;
            ys[k] = i;
            zs[k] = z[i][j];
            if (Double.isFinite(z[i][j])) max = Math.max(max, z[i][j]);
        }
        DefaultXYZDataset ds = new DefaultXYZDataset();
        ds.addSeries(valueLabel, new double[][] {xs, ys, zs});
        String[] colNames = new String[cols];
        for (int j = 0; j < cols; j++) colNames[j] = colValues == null ? Integer.toString(j) : trim(colValues[j]);
        SymbolAxis xAxis = new SymbolAxis(xLabel, colNames);
        xAxis.setGridBandsVisible(false);
        xAxis.setTickLabelFont(new Font(Font.SANS_SERIF, Font.PLAIN, 9));
        if (cols > 12) xAxis.setVerticalTickLabels(true);
        SymbolAxis yAxis = new SymbolAxis(yLabel, rowNames);
        yAxis.setGridBandsVisible(false);
        yAxis.setTickLabelFont(new Font(Font.SANS_SERIF, Font.PLAIN, 9));
        XYBlockRenderer r = new XYBlockRenderer();
        double top = max > 0 ? max : 1;
        PaintScale scale = new ColourScale(top);
        r.setPaintScale(scale);
        XYPlot p = new XYPlot(ds, xAxis, yAxis, r);
        p.setBackgroundPaint(Color.WHITE);
        p.setDomainGridlinesVisible(false);
        p.setRangeGridlinesVisible(false);
        JFreeChart c = new JFreeChart(title, new Font(Font.SANS_SERIF, Font.BOLD, 13), p, false);
        NumberAxis legendAxis = new NumberAxis(valueLabel);
        legendAxis.setRange(0, top);
        PaintScaleLegend legend = new PaintScaleLegend(scale, legendAxis);
        legend.setPosition(RectangleEdge.RIGHT);
        legend.setStripWidth(10);
        legend.setMargin(4, 4, 4, 4);
        c.addSubtitle(legend);
        c.setBackgroundPaint(BACKGROUND);
        return c;
    }

    private static String trim(double v) { return v == Math.rint(v) ? Long.toString((long) v) : String.format(java.util.Locale.ROOT, "%.3g", v); }

    /** The studio's colour scale from 0 to max ({@link Heatmaps#rgb}). */
    public record ColourScale(double max) implements PaintScale {
        @Override public double getLowerBound() { return 0; }
        @Override public double getUpperBound() { return max; }
        @Override public Paint getPaint(double v) { return Double.isNaN(v) ? Color.LIGHT_GRAY : new Color(Heatmaps.rgb(v / max)); }
    }

    private static void style(JFreeChart c) {
        c.setBackgroundPaint(BACKGROUND);
        if (c.getTitle() != null) c.getTitle().setFont(new Font(Font.SANS_SERIF, Font.BOLD, 13));
        if (c.getPlot() instanceof XYPlot p) {
            p.setBackgroundPaint(Color.WHITE);
            p.setDomainGridlinePaint(GRID);
            p.setRangeGridlinePaint(GRID);
        } else if (c.getPlot() instanceof CategoryPlot p) {
            p.setBackgroundPaint(Color.WHITE);
            p.setRangeGridlinePaint(GRID);
        }
    }
}
