//! The SVG chart: throughput against concurrency.

use std::fmt::Write as _;

use super::report::{Phase, Summary, System};

/// Each system's line colour.
fn color(system: System) -> &'static str {
    match system {
        System::Raw => "#888",
        System::Lessor => "#1f5fbf",
        System::OpenBao => "#d9822b",
        System::LessorHttp => "#2f9e44",
    }
}

fn color_name(system: System) -> &'static str {
    match system {
        System::Raw => "grey",
        System::Lessor => "blue",
        System::OpenBao => "orange",
        System::LessorHttp => "green",
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Throughput against concurrency: one panel per (statement set, phase), one line
/// of round medians per system, the median ratios (lessor/raw, lessor/openbao, …)
/// written in.
pub fn svg(summaries: &[Summary], conditions: &str) -> String {
    let mut systems: Vec<System> = summaries.iter().flat_map(|s| s.systems.iter().map(|x| x.system)).collect();
    systems.sort_unstable();
    systems.dedup();
    let mut panels: Vec<(String, Phase)> = Vec::new();
    for s in summaries {
        if !panels.iter().any(|(set, phase)| *set == s.set && *phase == s.phase) {
            panels.push((s.set.clone(), s.phase));
        }
    }
    let (pw, ph, margin) = (360.0, 240.0, 50.0);
    let cols = 2usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let width = cols as f64 * (pw + margin) + margin;
    let height = rows as f64 * (ph + margin + 20.0) + margin + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let legend: Vec<String> = systems
        .iter()
        .map(|&s| {
            let name = match s {
                System::Raw => "raw SQL",
                other => other.name(),
            };
            format!("{name} ({})", color_name(s))
        })
        .collect();
    let _ = writeln!(
        out,
        r#"<text x="{margin}" y="20" font-size="13">Credentials per second against concurrency: {}</text>"#,
        xml_escape(&legend.join(", "))
    );
    // The conditions, wrapped at their `; ` separators to fit the width.
    let mut lines = vec![String::new()];
    for part in conditions.split("; ") {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + part.len() > 120 {
            lines.push(part.to_string());
        } else {
            if !line.is_empty() {
                line.push_str("; ");
            }
            line.push_str(part);
        }
    }
    for (i, line) in lines.iter().take(5).enumerate() {
        let _ = writeln!(out, r##"<text x="{margin}" y="{}" fill="#555">{}</text>"##, 36 + 14 * i, xml_escape(line));
    }
    for (i, (set, phase)) in panels.iter().enumerate() {
        let x0 = margin + (i % cols) as f64 * (pw + margin);
        let y0 = 80.0 + margin + (i / cols) as f64 * (ph + margin + 20.0);
        let points: Vec<&Summary> = summaries.iter().filter(|s| s.set == *set && s.phase == *phase).collect();
        let cs: Vec<usize> = points.iter().map(|s| s.concurrency).collect();
        let ymax = points.iter().flat_map(|s| s.systems.iter().map(|x| x.per_s)).fold(1.0, f64::max) * 1.15;
        let xmax = cs.len().max(2) - 1;
        let px = |k: usize| x0 + pw * k as f64 / xmax as f64;
        let py = |v: f64| y0 + ph - ph * v / ymax;
        let _ = writeln!(
            out,
            r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{x0}" y="{}" font-size="12">{} — {}</text>"##,
            y0 - 6.0,
            xml_escape(set),
            phase.name()
        );
        for t in 0..=4 {
            let v = ymax * t as f64 / 4.0;
            let y = py(v);
            let _ = writeln!(
                out,
                r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.0}</text>"##,
                x0 + pw,
                x0 - 4.0,
                y + 4.0,
            );
        }
        for (k, c) in cs.iter().enumerate() {
            let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="middle">c={c}</text>"#, px(k), y0 + ph + 14.0);
        }
        for &system in &systems {
            let color = color(system);
            let value = |s: &Summary| s.system(system).map(|x| x.per_s);
            let path: Vec<String> = points
                .iter()
                .enumerate()
                .filter_map(|(k, s)| value(s).map(|v| format!("{:.1},{:.1}", px(k), py(v))))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
            for (k, s) in points.iter().enumerate() {
                let Some(v) = value(s) else { continue };
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{} c={}: {:.1}/s</title></circle>"#,
                    px(k),
                    py(v),
                    system.name(),
                    s.concurrency,
                    v
                );
            }
        }
        // The ratios of the first summary's kinds, one line each, at the top of the panel.
        let names: Vec<(System, System)> =
            points.first().map(|s| s.ratios.iter().map(|r| (r.numerator, r.denominator)).collect()).unwrap_or_default();
        for (line, (n, d)) in names.into_iter().enumerate() {
            let ratios: Vec<String> = points
                .iter()
                .map(|s| s.ratio_of(n, d).map_or("—".to_string(), |r| format!("{:.2}", r.median)))
                .collect();
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}">{}/{}: {}</text>"#,
                x0 + 6.0,
                y0 + 14.0 + 13.0 * line as f64,
                n.name(),
                d.name(),
                ratios.join(" · ")
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
