//! A hand-written SVG bar chart of a [`Comparison`]: one bar per run, accuracy in percent on the
//! y axis, value labels on the bars, the floor and ceiling drawn in their own colours and as dashed
//! reference lines, and each weak-to-strong bar annotated with its PGR. Plain SVG 1.1 that any
//! browser renders; no plotting dependency.

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

/// Render `c` as an SVG document.
pub fn bar_chart(c: &Comparison) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |acc: f64| TOP + plot_h * (1.0 - acc.clamp(0.0, 1.0));
    let mut s = String::new();
    // Writing to a String cannot fail; the results of write! below are ignored for that reason.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{} ({})</text>"#,
        WIDTH / 2.0,
        escape(&c.title),
        c.task
    );
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
}
