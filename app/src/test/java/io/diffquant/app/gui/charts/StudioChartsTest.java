package io.diffquant.app.gui.charts;

import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.xy.XYDataset;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** StudioCharts' series and batching (a ChartViewer redraws on every chart change event, on the FX thread). */
class StudioChartsTest {
    private static final StudioCharts.Series A = new StudioCharts.Series("FP32", new double[] {1, 2, 3}, new double[] {0.5, Double.NaN, 0.1});
    private static final StudioCharts.Series B = new StudioCharts.Series("current", new double[] {1, 2, 3}, new double[] {0.4, 0.2, 0.05});

    @Test void batchFiresOneChangeEventForManyEdits() {
        JFreeChart chart = StudioCharts.lines(null, "step", "change", false);
        AtomicInteger events = new AtomicInteger();
        chart.addChangeListener(e -> events.incrementAndGet());

        StudioCharts.setSeries(chart, List.of(A, B));
        StudioCharts.setDomainMarker(chart, 2);
        int unbatched = events.get();
        assertTrue(unbatched >= 3, "without batching each edit redraws: " + unbatched + " events");

        events.set(0);
        StudioCharts.batch(chart, () -> {
            StudioCharts.setSeries(chart, List.of(B));
            StudioCharts.setDomainMarker(chart, 3);
        });
        assertEquals(1, events.get(), "one redraw for the whole batch");
        assertTrue(chart.isNotify(), "notification restored");
        XYPlot p = chart.getXYPlot();
        assertEquals(1, p.getDataset().getSeriesCount());
        assertEquals(1, p.getDomainMarkers(org.jfree.chart.ui.Layer.FOREGROUND).size());
    }

    @Test void batchRestoresNotificationWhenTheEditThrows() {
        JFreeChart chart = StudioCharts.lines(null, "step", "change", false);
        try {
            StudioCharts.batch(chart, () -> { throw new IllegalStateException("edit failed"); });
        } catch (IllegalStateException expected) {
            // the chart must still redraw on later edits
        }
        assertTrue(chart.isNotify());
    }

    @Test void setSeriesSkipsNonFiniteValues() {
        JFreeChart chart = StudioCharts.lines(null, "step", "change", false);
        StudioCharts.setSeries(chart, List.of(A, B));
        XYDataset d = chart.getXYPlot().getDataset();
        assertEquals(2, d.getSeriesCount());
        assertEquals(2, d.getItemCount(0), "the NaN point of FP32 is left out");
        assertEquals(3, d.getItemCount(1));
        assertEquals(0.1, d.getYValue(0, 1), 0);
    }
}
