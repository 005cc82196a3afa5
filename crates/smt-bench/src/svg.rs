//! Minimal hand-written SVG charts: a log-log line chart and a grouped bar chart,
//! both with min-max whiskers for the spread of repeated runs.

use std::fmt::Write;

const W: f64 = 820.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 60.0;

/// A value with the spread of its runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// A stable colour per transport name.
pub fn color(name: &str) -> &'static str {
    match name {
        "raw-udp" => "#7f7f7f",
        "raw-udp-busy" => "#bcbd22",
        "tcp" => "#8c564b",
        "tls-tcp" => "#d62728",
        "tls-tcp-pool" => "#ff9896",
        "quic" => "#9467bd",
        "smt" => "#1f77b4",
        "smt-busy" => "#17becf",
        "smt-ip" => "#2ca02c",
        _ => {
            const OTHERS: [&str; 4] = ["#e377c2", "#ff7f0e", "#98df8a", "#c5b0d5"];
            OTHERS[name.len() % OTHERS.len()]
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn header(out: &mut String, title: &str, y_label: &str, x_label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>
<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        esc(title),
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        esc(y_label),
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 14.0,
        esc(x_label),
    );
}

fn legend(out: &mut String, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let x = W - RIGHT + 16.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="14" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 9.0,
            color(name),
            x + 20.0,
            y,
            esc(name)
        );
    }
}

/// Log-scale ticks (1, 2, 5 x 10^k) covering [lo, hi].
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    if !(lo > 0.0 && hi >= lo) {
        return ticks;
    }
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo * 0.9999 && t <= hi * 1.0001 {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// About five round linear ticks from 0 to at least `hi`.
pub fn linear_ticks(hi: f64) -> Vec<f64> {
    if hi <= 0.0 || !hi.is_finite() {
        return vec![0.0, 1.0];
    }
    let raw = hi / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(raw);
    let n = (hi / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

pub fn fmt_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 || v == 0.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{v}")
    }
}

/// A line chart, log-scale on both axes, x ticks as given.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_ticks: &[(f64, String)],
    series: &[Series],
) -> String {
    let ys = series.iter().flat_map(|s| s.points.iter().flat_map(|p| [p.lo, p.hi, p.y]));
    let ys: Vec<f64> = ys.filter(|v| *v > 0.0 && v.is_finite()).collect();
    let (ymin, ymax) = ys.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (ymin, ymax) = if ys.is_empty() { (1.0, 10.0) } else { (ymin / 1.3, ymax * 1.3) };
    let xs: Vec<f64> = x_ticks.iter().map(|t| t.0).collect();
    let (xmin, xmax) = xs.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (xmin, xmax) = if xs.is_empty() { (1.0, 10.0) } else { (xmin / 1.5, xmax * 1.5) };
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x.log10() - xmin.log10()) / (xmax.log10() - xmin.log10()) * pw;
    let sy = |y: f64| TOP + ph - (y.log10() - ymin.log10()) / (ymax.log10() - ymin.log10()) * ph;
    let mut out = String::new();
    header(&mut out, title, y_label, x_label);
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    for t in log_ticks(ymin, ymax) {
        let y = sy(t);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    for (x, label) in x_ticks {
        let px = sx(*x);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            esc(label)
        );
    }
    for s in series {
        let c = color(&s.name);
        let pts: Vec<String> =
            s.points.iter().map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.y))).collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for p in &s.points {
            let (x, y) = (sx(p.x), sy(p.y));
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}"/><circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}"/>"#,
                sy(p.lo.max(ymin)),
                sy(p.hi.max(ymin)),
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// A grouped bar chart: one group per category, one bar per series (`None` leaves
/// a gap). Linear y axis from zero, or log-scale with `log_y`.
pub fn bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[String],
    series: &[(String, Vec<Option<Point>>)],
    log_y: bool,
) -> String {
    let vals: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().flat_map(|p| [p.y, p.hi, p.lo]))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let vmax = vals.iter().copied().fold(0.0, f64::max);
    let vmin = vals.iter().copied().fold(f64::MAX, f64::min);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let (lo, hi, ticks) = if log_y {
        let (lo, hi) = if vals.is_empty() { (1.0, 10.0) } else { (vmin / 1.5, vmax * 1.5) };
        (lo, hi, log_ticks(lo, hi))
    } else {
        let ticks = linear_ticks(vmax * 1.05);
        (0.0, *ticks.last().unwrap_or(&1.0), ticks)
    };
    let sy = |v: f64| {
        let f = if log_y {
            (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
        } else {
            v / hi
        };
        TOP + ph - f.clamp(0.0, 1.0) * ph
    };
    let mut out = String::new();
    header(&mut out, title, y_label, x_label);
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    for t in ticks {
        let y = sy(t);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let gw = pw / groups.len().max(1) as f64;
    let bw = (gw * 0.8) / series.len().max(1) as f64;
    for (g, name) in groups.iter().enumerate() {
        let gx = LEFT + gw * g as f64;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + gw / 2.0,
            TOP + ph + 18.0,
            esc(name)
        );
        for (i, (sname, values)) in series.iter().enumerate() {
            let Some(Some(p)) = values.get(g) else { continue };
            let x = gx + gw * 0.1 + bw * i as f64;
            let y = sy(p.y);
            let base = TOP + ph;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                bw * 0.9,
                (base - y).max(0.0),
                color(sname),
                esc(sname),
                fmt_tick(p.y)
            );
            let cx = x + bw * 0.45;
            let _ = writeln!(
                out,
                r##"<line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="#000"/>"##,
                sy(p.lo),
                sy(p.hi)
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(log_ticks(3.0, 60.0), vec![5.0, 10.0, 20.0, 50.0]);
        assert_eq!(linear_ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(fmt_tick(250_000.0), "250k");
    }

    #[test]
    fn charts_are_well_formed() {
        let p = Point { x: 64.0, y: 50.0, lo: 45.0, hi: 60.0 };
        let svg = line_chart(
            "RTT <p50>",
            "size",
            "us",
            &[(64.0, "64B".into()), (1024.0, "1K".into())],
            &[Series { name: "smt".into(), points: vec![p, Point { x: 1024.0, ..p }] }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("RTT &lt;p50&gt;"));
        let bars = bar_chart(
            "t",
            "x",
            "y",
            &["a".into(), "b".into()],
            &[("smt".into(), vec![Some(p), None])],
            false,
        );
        assert_eq!(bars.matches("<rect x=").count(), 1 + 1 + 1); // frame, bar, legend
    }
}
