//! `--plot FILE` (.png or .svg): one panel per workload, the latency of
//! every Ok operation over the run (log scale), Fail and Info operations
//! as marks along the top, and the fault windows shaded and labelled.
//!
//! Same plotters setup as the incident plot (pure-Rust text through
//! ab_glyph and a system TTF font); the font lookup is repeated here
//! because the incident module keeps its own private.

use super::error::ChaosError;
use super::faults::FaultRecord;
use super::history::{History, Outcome};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

const PANEL: (u32, u32) = (1400, 300);
const FAMILY: &str = "sans-serif";
/// Ok points drawn per workload at most (evenly thinned beyond).
const MAX_POINTS: usize = 20_000;

/// Draws the timeline of a run into `path`.
pub fn draw(
    path: &Path,
    histories: &BTreeMap<String, History>,
    faults: &[FaultRecord],
    seed: u64,
) -> Result<(), ChaosError> {
    let fail = |reason: String| ChaosError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    // The incident plot's font lookup: one registration per process.
    crate::incident::plot::ensure_font(None).map_err(|e| fail(e.to_string()))?;
    let panels = histories.len().max(1) as u32;
    let size = (PANEL.0, PANEL.1 * panels + 40);
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_on(root, histories, faults, seed).map_err(fail)
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_on(root, histories, faults, seed).map_err(fail)
        }
        _ => Err(fail("the plot file must end in .png or .svg".into())),
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Latency (ms) of the Ok operations: (start s, ms), thinned to
/// [`MAX_POINTS`].
pub fn ok_points(h: &History) -> Vec<(f64, f64)> {
    let all: Vec<(f64, f64)> = h
        .ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| {
            let end = o.end_ns?;
            Some((
                secs(o.start_ns),
                (end.saturating_sub(o.start_ns) as f64 / 1e6).max(0.01),
            ))
        })
        .collect();
    let step = all.len().div_ceil(MAX_POINTS).max(1);
    all.into_iter().step_by(step).collect()
}

/// 0.1, 1, 10, 1000: no trailing ".0" on the log axis.
fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-v.log10()).ceil().max(1.0) as usize;
        format!("{v:.decimals$}")
    }
}

fn fault_color(kind: super::nemesis::NemesisKind) -> RGBColor {
    use super::nemesis::NemesisKind::*;
    match kind {
        Kill => RGBColor(214, 39, 40),
        Pause => RGBColor(148, 103, 189),
        Partition => RGBColor(255, 127, 14),
        Clock => RGBColor(44, 160, 44),
        Disk => RGBColor(140, 86, 75),
        Proxy => RGBColor(31, 119, 180),
    }
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    histories: &BTreeMap<String, History>,
    faults: &[FaultRecord],
    seed: u64,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (title, body) = root.split_vertically(40);
    title
        .draw_text(
            &format!("chaos run, seed {seed}: latency of ok operations, faults shaded"),
            &(FAMILY, 20).into_font().color(&BLACK),
            (12, 10),
        )
        .map_err(err)?;
    let end = histories
        .values()
        .flat_map(|h| h.ops.iter().map(|o| o.end_ns.unwrap_or(o.start_ns)))
        .chain(faults.iter().filter_map(|f| f.end_ns))
        .max()
        .map_or(1.0, secs)
        .max(1.0);
    let panels = body.split_evenly((histories.len().max(1), 1));
    for (panel, (name, h)) in panels.iter().zip(histories) {
        let points = ok_points(h);
        let hi = points.iter().map(|p| p.1).fold(1.0f64, f64::max);
        let (y_lo, y_hi) = (0.1f64, 10f64.powf(hi.log10().ceil() + 0.5));
        let mut chart = ChartBuilder::on(panel)
            .caption(name, (FAMILY, 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..end, (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("ms (log)")
            .y_label_formatter(&|v| fmt_ms(*v))
            .label_style((FAMILY, 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for f in faults {
            let color = fault_color(f.kind);
            let x0 = secs(f.start_ns);
            let x1 = f.end_ns.map_or(end, secs);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y_lo), (x1, y_hi)],
                    color.mix(0.15).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    f.kind.name().to_string(),
                    (x0, y_hi / 1.5),
                    (FAMILY, 11).into_font().color(&color),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 1, RGBColor(31, 119, 180).filled())),
            )
            .map_err(err)?
            .label("ok")
            .legend(|(x, y)| Circle::new((x, y), 3, RGBColor(31, 119, 180).filled()));
        for (outcome, color, y, label) in [
            (Outcome::Info, RGBColor(214, 39, 40), y_hi / 3.0, "info"),
            (Outcome::Fail, RGBColor(255, 127, 14), y_hi / 6.0, "fail"),
        ] {
            let marks: Vec<f64> = h
                .ops
                .iter()
                .filter(|o| o.outcome == outcome)
                .map(|o| secs(o.start_ns))
                .collect();
            if marks.is_empty() {
                continue;
            }
            chart
                .draw_series(marks.into_iter().map(move |x| Cross::new((x, y), 3, color)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| Cross::new((x, y), 3, color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FAMILY, 12))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::{Op, OpKind};

    #[test]
    fn ok_points_are_thinned_and_in_ms() {
        let ops = (0..50_000u64)
            .map(|i| Op {
                process: 0,
                start_ns: i * 1_000_000,
                end_ns: Some(i * 1_000_000 + 2_000_000),
                outcome: Outcome::Ok,
                kind: OpKind::CounterIncr {
                    key: "k".into(),
                    value: Some(1),
                },
                error: None,
            })
            .collect();
        let points = ok_points(&History { ops });
        assert!(points.len() <= MAX_POINTS);
        assert!(points.len() > MAX_POINTS / 2);
        assert!((points[0].1 - 2.0).abs() < 1e-9);
    }
}
