//! The PNG chart: throughput against local memory (as a fraction of the working set), one
//! line per system and level (lighter for lower levels), all-local as a flat reference line, as in the original's figures.
//!
//! # Fonts
//!
//! plotters is built with `ab_glyph`, which needs no system font library: the harness reads
//! one TrueType file at run time (`AIFM_EVAL_FONT`, else a DejaVu or Liberation sans from the
//! usual system paths) and registers it. With none found the chart is still drawn, lines and
//! points only, without text; the markdown table carries the numbers either way.

use crate::report::{series_name, si, Level, Median, System};
use plotters::prelude::*;
use std::path::Path;

/// Fonts tried when `AIFM_EVAL_FONT` is unset.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers a sans-serif font with plotters; true when one was found.
fn load_font() -> bool {
    let env = std::env::var_os("AIFM_EVAL_FONT").map(std::path::PathBuf::from);
    let candidates = env
        .into_iter()
        .chain(FONT_PATHS.iter().map(std::path::PathBuf::from));
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // plotters keeps fonts for the life of the process; one small leak per run.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// The colour of a system's line.
fn colour(sys: System) -> RGBColor {
    match sys {
        System::AllLocal => RGBColor(40, 40, 40),
        System::AifmEmbedded => RGBColor(31, 119, 180),
        System::AifmTcp { servers, replicas } => {
            // Red for one server, darker for more servers, purple with replication.
            let shade = 40 * (servers.saturating_sub(1)).min(3);
            if replicas > 1 {
                RGBColor(148 - shade / 2, 103 - shade, 189 - shade)
            } else {
                RGBColor(214 - shade, 39, 40)
            }
        }
        System::Paging => RGBColor(44, 160, 44),
    }
}

/// The colour of a series: its system's, lighter for lower levels (the highest level of a
/// system gets the full colour).
fn series_colour(sys: System, level: Level, levels: &[Level]) -> RGBColor {
    let RGBColor(r, g, b) = colour(sys);
    let rank = levels.iter().filter(|l| **l > level).count() as f64;
    let light = (rank * 0.3).min(0.7);
    let mix = |c: u8| (c as f64 + (255.0 - c as f64) * light) as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

/// Draws `path`; returns whether text (caption, axes, legend) could be drawn.
///
/// # Errors
/// plotters' drawing or encoding errors, as text.
pub fn draw(path: &Path, title: &str, unit: &str, meds: &[Median]) -> Result<bool, String> {
    let text = load_font();
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;

    let xs: Vec<f64> = meds.iter().filter_map(|m| m.fraction).collect();
    let x_max = xs.iter().copied().fold(0.0f64, f64::max).max(0.05) * 1.05;
    let x_min = 0.0;
    let y_max = meds
        .iter()
        .filter_map(|m| m.median.map(|x| x.0))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * if text { 1.35 } else { 1.1 }; // headroom for the legend

    let mut builder = ChartBuilder::on(&root);
    builder.margin(18);
    if text {
        builder
            .caption(title, ("sans-serif", 24))
            .x_label_area_size(48)
            .y_label_area_size(80);
    }
    let mut chart = builder
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    if text {
        let x_fmt = |x: &f64| format!("{:.0}%", x * 100.0);
        let y_fmt = |y: &f64| si(*y);
        chart
            .configure_mesh()
            .x_desc("local memory (% of working set)")
            .y_desc(format!("throughput ({unit})"))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(|e| err(&e))?;
    } else {
        chart
            .plotting_area()
            .draw(&Rectangle::new(
                [(x_min, 0.0), (x_max, y_max)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
    }

    let mut series: Vec<(System, Level)> = meds.iter().map(|m| (m.system, m.level)).collect();
    series.sort_by_key(|&(sys, level)| (System::ALL.iter().position(|s| *s == sys), level));
    series.dedup();
    for &(sys, level) in &series {
        let levels: Vec<Level> = series.iter().filter(|s| s.0 == sys).map(|s| s.1).collect();
        let c = series_colour(sys, level, &levels);
        let mut points: Vec<(f64, f64)> = if sys == System::AllLocal {
            let base = meds
                .iter()
                .find(|m| m.system == sys && m.level == level)
                .and_then(|m| m.median);
            match base {
                Some((v, _, _)) => vec![(x_min, v), (x_max, v)],
                None => continue,
            }
        } else {
            meds.iter()
                .filter(|m| m.system == sys && m.level == level)
                .filter_map(|m| Some((m.fraction?, m.median?.0)))
                .collect()
        };
        if points.is_empty() {
            continue;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let drawn = chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))
            .map_err(|e| err(&e))?;
        if text {
            drawn.label(series_name(sys, level)).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
            });
        }
        if sys != System::AllLocal {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(text)
}
