//! One SVG chart of the YCSB results: throughput per workload and value size, a bar
//! per transport and server, whiskers from the slowest to the fastest repetition.

use std::fmt::Write;

/// A bar: its label, the median and the spread.
pub struct Bar {
    pub label: String,
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

/// A group of bars (one workload at one value size).
pub struct Group {
    pub label: String,
    pub bars: Vec<Bar>,
}

const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#8c564b", "#ff9896", "#c49c94"];

/// A grouped bar chart; the bars of every group share the series order of the first.
pub fn grouped_bars(title: &str, y_label: &str, groups: &[Group]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 420.0, 80.0, 180.0, 40.0, 60.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.hi.max(b.median)))
        .fold(1.0f64, f64::max)
        * 1.1;
    let y = |v: f64| top + plot_h * (1.0 - v / max);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>"#,
        left + plot_w / 2.0
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{0}" text-anchor="middle" transform="rotate(-90 16 {0})">{y_label}</text>"#,
        top + plot_h / 2.0
    );
    for i in 0..=5 {
        let v = max * f64::from(i) / 5.0;
        let (x2, yy, tx, ty) = (left + plot_w, y(v), left - 6.0, y(v) + 4.0);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" x2="{x2}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{v:.0}</text>"##
        );
    }
    let group_w = plot_w / groups.len().max(1) as f64;
    for (gi, group) in groups.iter().enumerate() {
        let x0 = left + group_w * gi as f64;
        let bar_w = group_w * 0.8 / group.bars.len().max(1) as f64;
        for (bi, bar) in group.bars.iter().enumerate() {
            let x = x0 + group_w * 0.1 + bar_w * bi as f64;
            let color = COLORS[bi % COLORS.len()];
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                y(bar.median),
                bar_w * 0.9,
                (y(0.0) - y(bar.median)).max(0.0)
            );
            let cx = x + bar_w * 0.45;
            let _ = writeln!(
                out,
                r#"<line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
                y(bar.lo),
                y(bar.hi)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + group_w / 2.0,
            top + plot_h + 18.0,
            group.label
        );
    }
    if let Some(first) = groups.first() {
        for (bi, bar) in first.bars.iter().enumerate() {
            let ly = top + 16.0 * bi as f64;
            let _ = writeln!(
                out,
                r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                w - right + 16.0,
                ly,
                COLORS[bi % COLORS.len()],
                w - right + 34.0,
                ly + 11.0,
                bar.label
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
