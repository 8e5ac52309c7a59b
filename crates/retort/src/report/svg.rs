//! Hand-written SVG charts for the HTML report: a scatter plot, horizontal bars and line
//! charts, each with axes, "nice" ticks, axis labels and a legend where needed.
//!
//! Plain strings, no chart library: the page must be self-contained (no scripts, no network)
//! and the charts are few and simple.

use std::fmt::Write;

/// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
/// Plot area margins: left leaves room for tick labels and the y-axis title.
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 56.0;
const LEGEND_ROW: f64 = 18.0;

/// A placed legend entry.
struct LegendItem {
    name: String,
    colour: &'static str,
    x: f64,
    row: usize,
}

/// Lays legend entries out left to right, wrapping at the chart's width (text width is
/// estimated: there is no font metrics without a browser).
fn layout_legend(names: Vec<(String, &'static str)>) -> Vec<LegendItem> {
    let (mut x, mut row) = (LEFT, 0);
    let mut items = Vec::new();
    for (name, colour) in names {
        let width = name.chars().count() as f64 * 6.8 + 40.0;
        if x + width > WIDTH - RIGHT && x > LEFT {
            (x, row) = (LEFT, row + 1);
        }
        items.push(LegendItem {
            name,
            colour,
            x,
            row,
        });
        x += width;
    }
    items
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Tick values covering `[min, max]` at a step of 1, 2 or 5 × 10ᵏ, about `target` of them.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    let (min, max) = if max > min {
        (min, max)
    } else {
        // One value (or none): a small range around it keeps the axis drawable.
        let pad = if min.abs() > 0.0 {
            min.abs() * 0.1
        } else {
            1.0
        };
        (min - pad, min + pad)
    };
    let raw = (max - min) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (min / step).floor() as i64;
    let end = (max / step).ceil() as i64;
    (start..=end).map(|i| i as f64 * step).collect()
}

/// A tick label with as many decimals as the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_string() // "-0.0" → "0.0"
    } else {
        s
    }
}

/// A linear map from data values onto a pixel range, with its ticks.
struct Axis {
    ticks: Vec<f64>,
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, from: f64, to: f64, zero: bool) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if zero {
            lo = lo.min(0.0);
        }
        let ticks = nice_ticks(lo, hi, 5);
        Self {
            lo: ticks[0],
            hi: ticks[ticks.len() - 1],
            ticks,
            from,
            to,
        }
    }

    fn px(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    fn step(&self) -> f64 {
        self.ticks.get(1).map_or(1.0, |t| t - self.ticks[0])
    }
}

/// One chart being drawn: the `<svg>` text and its plot area.
struct Canvas {
    out: String,
}

impl Canvas {
    fn new(id: &str, title: &str, height: f64) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{id}-title"><title id="{id}-title">{t}</title><text class="chart-title" x="{x}" y="22" text-anchor="middle">{t}</text>"#,
            t = escape(title),
            x = WIDTH / 2.0,
        );
        Self { out }
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, s: &str) {
        let _ = write!(
            self.out,
            r#"<text class="{class}" x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{}</text>"#,
            escape(s)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str) {
        let _ = write!(
            self.out,
            r#"<line class="{class}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"/>"#
        );
    }

    /// The x axis along `bottom`: tick labels, the axis line and its title; with `grid_top`,
    /// vertical grid lines up to it instead of tick marks.
    fn x_axis(&mut self, x: &Axis, bottom: f64, grid_top: Option<f64>, title: &str) {
        for &t in &x.ticks {
            let px = x.px(t);
            match grid_top {
                Some(top) => self.line((px, top), (px, bottom), "grid"),
                None => self.line((px, bottom), (px, bottom + 5.0), "axis"),
            }
            let label = tick_label(t, x.step());
            self.text(px, bottom + 20.0, "middle", "tick", &label);
        }
        self.line((x.from, bottom), (x.to, bottom), "axis");
        let mid = (x.from + x.to) / 2.0;
        self.text(mid, bottom + 44.0, "middle", "axis-title", title);
    }

    /// Both axes with grid lines, tick labels and titles.
    fn axes(&mut self, x: &Axis, y: &Axis, x_title: &str, y_title: &str) {
        let (bottom, top) = (y.from, y.to);
        for &t in &y.ticks {
            let py = y.px(t);
            self.line((x.from, py), (x.to, py), "grid");
            self.text(
                x.from - 8.0,
                py + 4.0,
                "end",
                "tick",
                &tick_label(t, y.step()),
            );
        }
        self.x_axis(x, bottom, None, x_title);
        self.line((x.from, bottom), (x.from, top), "axis");
        let (cx, cy) = (18.0, (top + bottom) / 2.0);
        let _ = write!(
            self.out,
            r#"<text class="axis-title" x="{cx}" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 {cx} {cy:.1})">{}</text>"#,
            escape(y_title)
        );
    }

    /// A legend below the plot area (never over the data): a swatch and a name per series,
    /// wrapped into rows; `top` is the first row's baseline.
    fn legend(&mut self, items: &[LegendItem], top: f64) {
        self.out.push_str(r#"<g class="legend">"#);
        for item in items {
            let (x, y) = (item.x, top + item.row as f64 * LEGEND_ROW);
            let _ = write!(
                self.out,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/>"#,
                y - 4.0,
                x + 16.0,
                y - 4.0,
                item.colour
            );
            self.text(x + 22.0, y, "start", "legend-text", &item.name);
        }
        self.out.push_str("</g>");
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A point of the scatter plot; `marked` points (the teacher) are drawn as a diamond.
pub struct Point {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub marked: bool,
    /// On the front the chart joins with a dashed staircase (no point both lower in x and
    /// higher in y).
    pub front: bool,
}

/// Scatter plot with a labelled marker per point.
pub fn scatter(id: &str, title: &str, points: &[Point], x_title: &str, y_title: &str) -> String {
    let mut c = Canvas::new(id, title, HEIGHT);
    // 5% of room around the points, so none sits on an axis or the chart's edge.
    let padded = |v: Vec<f64>| {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let pad = 0.05 * (hi - lo).max(hi.abs() * 0.1);
        v.into_iter()
            .chain([lo - pad, hi + pad])
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let xs = padded(points.iter().map(|p| p.x).collect());
    let ys = padded(points.iter().map(|p| p.y).collect());
    let x = Axis::new(
        xs.into_iter().map(|v| v.max(0.0)),
        LEFT,
        WIDTH - RIGHT,
        true,
    );
    let y = Axis::new(ys.into_iter(), HEIGHT - BOTTOM, TOP, false);
    c.axes(&x, &y, x_title, y_title);
    front_line(&mut c, &x, &y, points);
    let mut placed = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let (px, py) = (x.px(p.x), y.px(p.y));
        let colour = PALETTE[i % PALETTE.len()];
        if p.marked {
            let _ = write!(
                c.out,
                r#"<path class="point teacher" d="M{px:.1} {:.1} L{:.1} {py:.1} L{px:.1} {:.1} L{:.1} {py:.1} Z" fill="{colour}"/>"#,
                py - 8.0,
                px + 8.0,
                py + 8.0,
                px - 8.0
            );
        } else {
            let _ = write!(
                c.out,
                r#"<circle class="point" cx="{px:.1}" cy="{py:.1}" r="6" fill="{colour}"/>"#
            );
        }
        // Labels go left of points in the right half so they stay inside the chart.
        let width = p.label.chars().count() as f64 * 6.6;
        let (x0, anchor) = if px > WIDTH * 0.6 {
            (px - 11.0 - width, "end")
        } else {
            (px + 11.0, "start")
        };
        let y = free_row(&mut placed, x0, x0 + width, py - 8.0);
        let tx = if anchor == "end" { x0 + width } else { x0 };
        c.text(tx, y, anchor, "point-label", &p.label);
    }
    c.finish()
}

/// A dashed staircase through the front's points in x order: from each point right to the
/// next one's x, then up to its y (the best score reachable for that cost or more).
fn front_line(c: &mut Canvas, x: &Axis, y: &Axis, points: &[Point]) {
    let mut front: Vec<&Point> = points.iter().filter(|p| p.front).collect();
    if front.len() < 2 {
        return;
    }
    front.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut d = format!("M{:.1} {:.1}", x.px(front[0].x), y.px(front[0].y));
    for p in &front[1..] {
        let _ = write!(d, " H{:.1} V{:.1}", x.px(p.x), y.px(p.y));
    }
    let _ = write!(
        c.out,
        r##"<path class="pareto" d="{d}" fill="none" stroke="#555" stroke-width="1.5" stroke-dasharray="5 4"/>"##
    );
}

/// The first baseline at or below `y` where a label spanning `[x0, x1]` overlaps none
/// already placed (models with similar numbers would otherwise print over each other).
fn free_row(placed: &mut Vec<(f64, f64, f64)>, x0: f64, x1: f64, mut y: f64) -> f64 {
    const LINE: f64 = 14.0;
    while placed
        .iter()
        .any(|&(a, b, py)| x0 < b && a < x1 && (py - y).abs() < LINE)
    {
        y += LINE;
    }
    placed.push((x0, x1, y));
    y
}

/// Horizontal bars, one per `(label, value)`, each with its value written at its end.
pub fn bars(id: &str, title: &str, bars: &[(String, f64)], x_title: &str, unit: &str) -> String {
    let row = 34.0;
    let label_width = 150.0;
    let height = TOP + bars.len() as f64 * row + BOTTOM;
    let mut c = Canvas::new(id, title, height);
    let x = Axis::new(
        bars.iter().map(|b| b.1),
        LEFT + label_width,
        WIDTH - RIGHT - 40.0,
        true,
    );
    let bottom = height - BOTTOM;
    c.x_axis(&x, bottom, Some(TOP), x_title);
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = TOP + i as f64 * row + 6.0;
        let w = (x.px(*v) - x.from).max(1.0);
        let _ = write!(
            c.out,
            r#"<rect class="bar" x="{:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"/>"#,
            x.from,
            row - 12.0,
            PALETTE[i % PALETTE.len()]
        );
        let mid = y + (row - 12.0) / 2.0 + 4.0;
        c.text(x.from - 8.0, mid, "end", "bar-label", label);
        c.text(
            x.from + w + 6.0,
            mid,
            "start",
            "bar-value",
            &format!("{v:.1} {unit}"),
        );
    }
    c.line((x.from, TOP), (x.from, bottom), "axis");
    c.finish()
}

/// A named series of `(x, y)` points for a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Line chart with a legend; series with a single point are drawn as a dot.
pub fn lines(id: &str, title: &str, series: &[Series], x_title: &str, y_title: &str) -> String {
    let legend = layout_legend(
        series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), PALETTE[i % PALETTE.len()]))
            .collect(),
    );
    let rows = legend.last().map_or(0, |l| l.row + 1);
    let mut c = Canvas::new(id, title, HEIGHT + rows as f64 * LEGEND_ROW + 6.0);
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x = Axis::new(all().map(|p| p.0), LEFT, WIDTH - RIGHT, true);
    let y = Axis::new(all().map(|p| p.1), HEIGHT - BOTTOM, TOP, false);
    c.axes(&x, &y, x_title, y_title);
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(a, b)| format!("{:.1},{:.1}", x.px(a), y.px(b)))
            .collect();
        if pts.len() == 1 {
            let (px, py) = pts[0].split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                c.out,
                r#"<circle class="series" cx="{px}" cy="{py}" r="4" fill="{colour}"/>"#
            );
        } else {
            let _ = write!(
                c.out,
                r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
    }
    c.legend(&legend, HEIGHT + 4.0);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(0.883, 0.8945, 5);
        assert!(t[0] <= 0.883 && *t.last().unwrap() >= 0.8945);
        assert_eq!(tick_label(0.885, 0.005), "0.885");
        assert_eq!(tick_label(20.0, 10.0), "20");
        // A single value still gives a drawable axis.
        assert!(nice_ticks(3.0, 3.0, 5).len() >= 2);
    }

    #[test]
    fn labels_never_share_a_row() {
        let mut placed = Vec::new();
        assert_eq!(free_row(&mut placed, 0.0, 50.0, 100.0), 100.0);
        assert_eq!(free_row(&mut placed, 10.0, 60.0, 105.0), 119.0);
        assert_eq!(free_row(&mut placed, 100.0, 150.0, 100.0), 100.0);
    }

    #[test]
    fn charts_are_escaped_and_closed() {
        let svg = scatter(
            "s",
            "a < b",
            &[Point {
                label: "x&y".into(),
                x: 1.0,
                y: 2.0,
                marked: true,
                front: true,
            }],
            "ms",
            "acc",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt; b") && svg.contains("x&amp;y"));
        assert!(!svg.contains("NaN"));
        // One point on the front draws no line.
        assert!(!svg.contains("class=\"pareto\""));
    }

    #[test]
    fn the_front_is_a_staircase_through_its_points_in_x_order() {
        let point = |x: f64, y: f64, front: bool| Point {
            label: format!("{x}"),
            x,
            y,
            marked: false,
            front,
        };
        let svg = scatter(
            "s",
            "front",
            &[
                point(8.0, 0.9, true),
                point(1.0, 0.8, true),
                point(5.0, 0.7, false),
            ],
            "ms",
            "acc",
        );
        let needle = "class=\"pareto\" d=\"";
        let start = svg.find(needle).expect("a front line") + needle.len();
        let d = &svg[start..start + svg[start..].find('"').unwrap()];
        // From the fast point, right to the slow one's x, then up to its score: M, H, V.
        assert_eq!(d.matches(['M', 'H', 'V']).count(), 3, "{d}");
        assert!(
            d.starts_with('M') && d.contains(" H") && d.contains(" V"),
            "{d}"
        );
    }
}
