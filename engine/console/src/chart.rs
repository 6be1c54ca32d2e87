//! Charts as inline SVG, drawn on the server: no script, nothing to fetch, colours from the
//! stylesheet (the policy allows no inline style). Each chart is an image with a name for screen
//! readers, followed by its numbers as a table (in a disclosure), which is also what the
//! browser tests compare with the API.
//!
//! **Owns** geometry and markup. **Must not touch** where the numbers come from.

use maud::{Markup, html};

/// One line or bar series: its name and a value per label.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Series {
        Series { name: name.into(), values }
    }
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 28.0;
/// Series colours: `.s0` to `.s7` in the stylesheet.
const PALETTE: usize = 8;

/// A round maximum for the y axis at or above `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|m| *m >= max).unwrap_or(max)
}

fn x_at(i: usize, n: usize) -> f64 {
    let inner = WIDTH - LEFT - RIGHT;
    if n <= 1 { LEFT + inner / 2.0 } else { LEFT + inner * i as f64 / (n - 1) as f64 }
}

fn y_at(v: f64, top: f64) -> f64 {
    TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / top)
}

/// Which labels to print under the x axis: about eight, evenly.
fn label_step(n: usize) -> usize {
    n.div_ceil(8).max(1)
}

fn axes(top: f64, labels: &[String], x: impl Fn(usize) -> f64) -> Markup {
    let step = label_step(labels.len());
    html! {
        @for k in 0..=4 {
            @let v = top * k as f64 / 4.0;
            @let y = y_at(v, top);
            line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) {}
            text.tick x=(LEFT - 4.0) y=(y + 4.0) text-anchor="end" { (crate::layout::num(v)) }
        }
        @for (i, label) in labels.iter().enumerate() {
            @if i % step == 0 {
                text.tick x=(x(i)) y=(HEIGHT - 8.0) text-anchor="middle" { (label) }
            }
        }
    }
}

fn legend(series: &[Series]) -> Markup {
    html! {
        ul.legend {
            @for (i, s) in series.iter().enumerate() {
                li { span class={"swatch s" (i % PALETTE)} {} (s.name) }
            }
        }
    }
}

/// The numbers of a chart as a table, in a disclosure under it.
pub fn data_table(id: &str, caption: &str, labels: &[String], series: &[Series]) -> Markup {
    html! {
        details.data {
            summary { "The numbers" }
            table id=(format!("{id}-data")) {
                caption { (caption) }
                thead { tr { th scope="col" { "" } @for s in series { th scope="col" { (s.name) } } } }
                tbody {
                    @for (i, label) in labels.iter().enumerate() {
                        tr {
                            th scope="row" { (label) }
                            @for s in series {
                                td data-value=(s.values.get(i).copied().unwrap_or(0.0)) {
                                    (crate::layout::num(s.values.get(i).copied().unwrap_or(0.0)))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A line chart of `series` over `labels` (weeks), with its legend and its numbers.
pub fn lines(id: &str, title: &str, labels: &[String], series: &[Series]) -> Markup {
    let max = series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    let top = nice_max(max);
    let n = labels.len();
    html! {
        figure.chart {
            figcaption id=(format!("{id}-title")) { (title) }
            svg id=(id) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-labelledby=(format!("{id}-title")) {
                (axes(top, labels, |i| x_at(i, n)))
                @for (k, s) in series.iter().enumerate() {
                    @let points: Vec<String> = s.values.iter().enumerate()
                        .map(|(i, v)| format!("{:.1},{:.1}", x_at(i, n), y_at(*v, top))).collect();
                    polyline class={"line s" (k % PALETTE)} points=(points.join(" ")) {}
                }
            }
            @if series.len() > 1 { (legend(series)) }
            (data_table(id, title, labels, series))
        }
    }
}

/// A grouped bar chart of `series` over `labels`, with its legend and its numbers.
pub fn bars(id: &str, title: &str, labels: &[String], series: &[Series]) -> Markup {
    bars_to(id, title, labels, series, None)
}

/// [`bars`] with a target drawn across them as a dashed line (and a column of the table).
pub fn bars_to(id: &str, title: &str, labels: &[String], series: &[Series], target: Option<f64>) -> Markup {
    let max = series.iter().flat_map(|s| s.values.iter().copied()).chain(target).fold(0.0, f64::max);
    let top = nice_max(max);
    let n = labels.len().max(1);
    let slot = (WIDTH - LEFT - RIGHT) / n as f64;
    let bar = (slot * 0.8 / series.len().max(1) as f64).max(1.0);
    let centre = |i: usize| LEFT + slot * (i as f64 + 0.5);
    html! {
        figure.chart {
            figcaption id=(format!("{id}-title")) { (title) }
            svg id=(id) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-labelledby=(format!("{id}-title")) {
                (axes(top, labels, centre))
                @for (k, s) in series.iter().enumerate() {
                    @for (i, v) in s.values.iter().enumerate() {
                        @let x = centre(i) - slot * 0.4 + bar * k as f64;
                        @let y = y_at(*v, top);
                        rect class={"bar s" (k % PALETTE)} x=(format!("{x:.1}")) y=(format!("{y:.1}"))
                            width=(format!("{bar:.1}")) height=(format!("{:.1}", (y_at(0.0, top) - y).max(0.0))) {}
                    }
                }
                @if let Some(t) = target {
                    line.target x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{:.1}", y_at(t, top))) y2=(format!("{:.1}", y_at(t, top))) {}
                }
            }
            @if series.len() > 1 || target.is_some() {
                ul.legend {
                    @for (i, s) in series.iter().enumerate() { li { span class={"swatch s" (i % PALETTE)} {} (s.name) } }
                    @if let Some(t) = target { li { span.swatch.target {} "target " (crate::layout::num(t)) } }
                }
            }
            (data_table(id, title, labels, series))
        }
    }
}

/// A small trend line, for a row of a table.
pub fn sparkline(values: &[f64], label: &str) -> Markup {
    let (w, h) = (96.0, 24.0);
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let n = values.len();
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if n <= 1 { w / 2.0 } else { w * i as f64 / (n - 1) as f64 };
            format!("{x:.1},{:.1}", h - 2.0 - (h - 4.0) * v / max)
        })
        .collect();
    html! {
        svg.spark viewBox={"0 0 " (w) " " (h)} role="img" aria-label=(label) {
            polyline.line.s0 points=(points.join(" ")) {}
        }
    }
}

/// The heat class (`heat-0` to `heat-5`) of `value` against the largest `max`.
pub fn heat(value: f64, max: f64) -> &'static str {
    const CLASSES: [&str; 6] = ["heat-0", "heat-1", "heat-2", "heat-3", "heat-4", "heat-5"];
    if value <= 0.0 || max <= 0.0 {
        return CLASSES[0];
    }
    let level = ((value / max) * 5.0).ceil() as usize;
    CLASSES[level.clamp(1, 5)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_tops_out_at_a_round_number_above_the_data() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(3310.0), 5000.0);
        assert_eq!(nice_max(200.0), 200.0);
        assert_eq!(nice_max(201.0), 250.0);
    }

    #[test]
    fn heat_rises_with_the_value_and_nothing_is_cold() {
        assert_eq!(heat(0.0, 10.0), "heat-0");
        assert_eq!(heat(1.0, 10.0), "heat-1");
        assert_eq!(heat(10.0, 10.0), "heat-5");
        assert_eq!(heat(5.0, 0.0), "heat-0");
    }

    #[test]
    fn a_line_chart_draws_a_polyline_a_series_and_tables_its_numbers() {
        let labels = vec!["w1".to_string(), "w2".to_string()];
        let chart = lines("c", "Moments", &labels, &[Series::new("moments", vec![3.0, 5.0])]).into_string();
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert!(chart.contains("data-value=\"5\""), "{chart}");
        assert!(chart.contains("role=\"img\""));
    }
}
