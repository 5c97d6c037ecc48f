//! Hand-written SVG charts. Plain SVG 1.1 that any browser renders; no plotting dependency.
//!
//! - [`bar_chart`]: a [`Comparison`], one bar per run, accuracy in percent on the y axis, value
//!   labels on the bars, the floor and ceiling drawn in their own colours and as dashed reference
//!   lines, and each weak-to-strong bar annotated with its PGR.
//! - [`line_chart`]: one panel per [`Series`] over a shared x axis (a training run's loss,
//!   learning rate and gradient norm over the steps), each panel with its own y range.

use std::fmt::Write as _;

use crate::report::{Comparison, Role};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 80.0;

/// Okabe–Ito colours, distinguishable with colour-blindness.
fn colour(role: Role) -> &'static str {
    match role {
        Role::Floor => "#E69F00",
        Role::WeakToStrong => "#009E73",
        Role::Ceiling => "#0072B2",
    }
}

/// Starts an SVG document of `height` (the width is [`WIDTH`]) on a white background, with
/// `title` centred at the top.
fn open(height: f64, title: &str) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results of write! in this file are ignored for that
    // reason.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title),
    );
    s
}

/// Render `c` as an SVG document.
pub fn bar_chart(c: &Comparison) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |acc: f64| TOP + plot_h * (1.0 - acc.clamp(0.0, 1.0));
    let mut s = open(HEIGHT, &format!("{} ({})", c.title, c.task));
    for tick in 0..=5 {
        let acc = f64::from(tick) / 5.0;
        let y = y_of(acc);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0,
            tick * 20
        );
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">test accuracy (%)</text>"#,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">run</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0
    );
    for e in c.entries.iter().filter(|e| e.role != Role::WeakToStrong) {
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-dasharray="6 4"/>"#,
            WIDTH - RIGHT,
            colour(e.role),
            y = y_of(e.accuracy)
        );
    }
    let n = c.entries.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.6).min(90.0);
    for (i, e) in c.entries.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5);
        let y = y_of(e.accuracy);
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{y:.1}" width="{bar_w:.1}" height="{:.1}" fill="{}"><title>{}: {:.1}%</title></rect>"#,
            x - bar_w / 2.0,
            TOP + plot_h - y,
            colour(e.role),
            escape(&e.name),
            100.0 * e.accuracy
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{:.1}%</text>"#,
            y - 6.0,
            100.0 * e.accuracy
        );
        if let Some(p) = e.pgr {
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">PGR {p:.2}</text>"#,
                y - 22.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            escape(&e.name)
        );
    }
    let legend = [
        (Role::Floor, "weak floor"),
        (Role::WeakToStrong, "weak-to-strong"),
        (Role::Ceiling, "strong ceiling"),
    ];
    for (k, (role, label)) in legend.iter().enumerate() {
        let x = LEFT + 170.0 * k as f64;
        let y = TOP + plot_h + 38.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{label}</text>"#,
            y - 10.0,
            colour(*role),
            x + 18.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One line of a [`line_chart`]: its name and its `(x, y)` points in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The panel's label.
    pub name: String,
    /// The points; non-finite ones are left out of the line.
    pub points: Vec<(f64, f64)>,
}

/// Height of one panel of a [`line_chart`].
const PANEL_HEIGHT: f64 = 150.0;
/// Space between two panels: the upper one's x range and the lower one's label.
const PANEL_GAP: f64 = 50.0;
/// Space below the last panel: its x range and the x axis label.
const LINE_CHART_BOTTOM: f64 = 60.0;

/// Okabe–Ito colours of the [`line_chart`] panels, in turn.
const LINE_COLOURS: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

/// Render `series` as an SVG document: one panel per series, stacked, over a shared x range
/// (labelled `x_label` at the bottom), each with its own y range and one polyline. Non-finite
/// points are left out, so a diverged value does not flatten the rest of the line; a series
/// without a finite point gets an empty panel that says so.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let finite: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|line| {
            line.points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect()
        })
        .collect();
    let x_span = Span::of(finite.iter().flatten().map(|&(x, _)| x));
    let panels = series.len() as f64;
    let height =
        TOP + panels * PANEL_HEIGHT + (panels - 1.0).max(0.0) * PANEL_GAP + LINE_CHART_BOTTOM;
    let mut s = open(height, title);
    for (i, (line, points)) in series.iter().zip(&finite).enumerate() {
        let top = TOP + i as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()];
        panel(&mut s, top, &line.name, colour, points, x_span);
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 16.0,
        escape(x_label)
    );
    s.push_str("</svg>\n");
    s
}

/// One [`line_chart`] panel whose frame starts at `top`: its label, frame, y range at the
/// left, x range below, and the polyline through `points` (all finite).
fn panel(
    s: &mut String,
    top: f64,
    name: &str,
    colour: &str,
    points: &[(f64, f64)],
    x: Option<Span>,
) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold" fill="{colour}">{}</text><rect x="{LEFT}" y="{top:.1}" width="{plot_w:.1}" height="{PANEL_HEIGHT}" fill="none" stroke="#999"/>"##,
        top - 8.0,
        escape(name)
    );
    let (Some(x), Some(y)) = (x, Span::of(points.iter().map(|&(_, y)| y))) else {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#777">no data</text>"##,
            LEFT + plot_w / 2.0,
            top + PANEL_HEIGHT / 2.0
        );
        return;
    };
    let bottom = top + PANEL_HEIGHT;
    for (value, at) in [(y.hi, top + 4.0), (y.lo, bottom)] {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{at:.1}" text-anchor="end" font-size="11">{}</text>"#,
            LEFT - 6.0,
            tick_label(value)
        );
    }
    for (value, anchor, at) in [(x.lo, "start", LEFT), (x.hi, "end", WIDTH - RIGHT)] {
        let _ = writeln!(
            s,
            r#"<text x="{at:.1}" y="{:.1}" text-anchor="{anchor}" font-size="11">{}</text>"#,
            bottom + 14.0,
            tick_label(value)
        );
    }
    let coordinates: Vec<String> = points
        .iter()
        .map(|&(px, py)| {
            let sx = LEFT + plot_w * x.fraction(px);
            let sy = bottom - PANEL_HEIGHT * y.fraction(py);
            format!("{sx:.1},{sy:.1}")
        })
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{}</title></polyline>"#,
        coordinates.join(" "),
        escape(name)
    );
}

/// The interval a panel maps its values from: their range, widened around a single value so
/// that every point has a place.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    lo: f64,
    hi: f64,
}

impl Span {
    /// The span of `values` (finite), `None` when there are none.
    fn of(values: impl Iterator<Item = f64>) -> Option<Self> {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo > hi {
            return None;
        }
        let pad = match (lo < hi, lo == 0.0) {
            (true, _) => 0.0,
            (false, true) => 1.0,
            (false, false) => lo.abs() * 0.1,
        };
        Some(Self {
            lo: lo - pad,
            hi: hi + pad,
        })
    }

    /// Where `v` lies in the span, 0 at `lo` and 1 at `hi`.
    fn fraction(self, v: f64) -> f64 {
        (v - self.lo) / (self.hi - self.lo)
    }
}

/// A short axis label: whole numbers as they are, others with four significant digits, very
/// large or small magnitudes in exponent form (learning rates, gradient norms).
fn tick_label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if v.abs() >= 1e4 || v.abs() < 1e-2 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Escape text for SVG element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskKind;

    #[test]
    fn chart_has_title_axes_values_and_role_colours() {
        let c = Comparison::new(
            "GSM8K <Gemma-2b>",
            TaskKind::Gsm8k,
            ("weak", 0.25),
            ("gold SFT", 0.625),
            &[("stage II", 0.5)],
        );
        let svg = bar_chart(&c);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("GSM8K &lt;Gemma-2b&gt; (gsm8k)"));
        assert!(svg.contains("test accuracy (%)"));
        for label in ["25.0%", "62.5%", "50.0%", "PGR 0.67", ">stage II</text>"] {
            assert!(svg.contains(label), "{label}");
        }
        for role in [Role::Floor, Role::WeakToStrong, Role::Ceiling] {
            assert!(svg.matches(colour(role)).count() >= 2, "{role:?}");
        }
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 3,
            "three bars and three legend keys"
        );
    }

    #[test]
    fn line_chart_draws_one_polyline_per_series_with_data() {
        let series = |name: &str, points: Vec<(f64, f64)>| Series {
            name: name.into(),
            points,
        };
        let svg = line_chart(
            "run <a>",
            "step",
            &[
                series("loss", vec![(1.0, 2.0), (2.0, 1.5), (3.0, 0.5)]),
                series(
                    "learning_rate",
                    vec![(1.0, 1e-3), (2.0, f64::NAN), (3.0, 1e-3)],
                ),
                series("grad_norm", Vec::new()),
            ],
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("run &lt;a&gt;"));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "grad_norm has no point"
        );
        assert_eq!(svg.matches("no data").count(), 1);
        assert!(!svg.contains("NaN"));
        // The loss panel spans its frame: the highest value at the top, the lowest at the bottom.
        let loss = svg
            .split("<polyline points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert_eq!(loss, "70.0,60.0 385.0,110.0 700.0,210.0");
        // The NaN learning rate is left out; the constant line sits mid-panel.
        let lr = svg
            .split("<polyline points=\"")
            .nth(2)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert_eq!(lr, "70.0,335.0 700.0,335.0");
    }
}
