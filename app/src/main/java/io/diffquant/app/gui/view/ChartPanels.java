package io.diffquant.app.gui.view;

import javafx.geometry.Insets;
import javafx.scene.Node;
import javafx.scene.control.ScrollPane;
import javafx.scene.layout.ColumnConstraints;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.Priority;
import javafx.scene.layout.RowConstraints;
import org.jfree.chart.fx.ChartViewer;

import java.util.List;

/** The layout the plot panels (temporal, sensitivity, distributions) share: controls on the left, a 2x2 chart grid. */
final class ChartPanels {
    private ChartPanels() {}

    /** The controls column: scrolls vertically, never horizontally. */
    static ScrollPane controls(Node controls, double prefWidth) {
        ScrollPane left = new ScrollPane(controls);
        left.setFitToWidth(true);
        left.setHbarPolicy(ScrollPane.ScrollBarPolicy.NEVER);
        left.setPrefWidth(prefWidth);
        return left;
    }

    /** A grid of two equal columns and two rows of {@code rowPercent} % of the height each, 8 px gaps and padding. */
    static GridPane grid(double rowPercent) {
        GridPane g = new GridPane();
        g.setHgap(8);
        g.setVgap(8);
        g.setPadding(new Insets(8));
        for (int i = 0; i < 2; i++) {
            ColumnConstraints c = new ColumnConstraints();
            c.setPercentWidth(50);
            c.setHgrow(Priority.ALWAYS);
            g.getColumnConstraints().add(c);
            RowConstraints r = new RowConstraints();
            r.setPercentHeight(rowPercent);
            r.setVgrow(Priority.ALWAYS);
            g.getRowConstraints().add(r);
        }
        return g;
    }

    /** Minimum and preferred sizes of chart viewers. */
    static void size(List<ChartViewer> viewers, double minW, double minH, double prefW, double prefH) {
        for (ChartViewer v : viewers) {
            v.setMinSize(minW, minH);
            v.setPrefSize(prefW, prefH);
        }
    }

    /**
     * Plots are redrawn only while their panel is shown: {@link #hidden()} says whether to skip a redraw (and remembers
     * that one is owed), {@link #refreshIfDirty()} pays it when the panel's tab is selected.
     */
    static final class RedrawGate {
        private final Node root;
        private final Runnable redraw;
        private boolean dirty;

        RedrawGate(Node root, Runnable redraw) {
            this.root = root;
            this.redraw = redraw;
        }

        /** True while the panel is hidden (a redraw is then owed); false when shown (nothing is owed any more). */
        boolean hidden() {
            if (!Formatting.showing(root)) {
                dirty = true;
                return true;
            }
            dirty = false;
            return false;
        }

        void refreshIfDirty() { if (dirty) redraw.run(); }
    }
}
