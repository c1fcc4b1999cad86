//! `--plot FILE`: ordinary-client p50/p99 (and Raft commit p99 when the
//! nodes were scraped) per second, log scale, with the abuse phase shaded
//! and the phase boundaries marked. One panel per run (two with
//! `--compare`, on the same y scale).
//!
//! plotters with its SVG and bitmap backends. Text goes through plotters'
//! pure-Rust `ab_glyph` renderer rather than its default `ttf` feature
//! (font-kit, which links fontconfig/freetype): that needs one TTF file at
//! run time, found at the usual system paths (Debian's fonts-dejavu-core),
//! through `fc-match`, or given with `--plot-font`.

use super::report::IncidentReport;
use super::{PHASES, PHASE_NAMES};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const PANEL: (u32, u32) = (1200, 480);
const FAMILY: &str = "sans-serif";

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: the plot file must end in .svg or .png")]
    Format(PathBuf),
    #[error(
        "no TrueType font found for the plot's text (looked for DejaVu/Liberation/Free/Noto \
         Sans and asked fc-match); install fonts-dejavu-core or pass --plot-font FILE.ttf"
    )]
    NoFont,
    #[error("font {path}: {reason}")]
    Font { path: PathBuf, reason: String },
    #[error("drawing {path}: {reason}")]
    Draw { path: PathBuf, reason: String },
}

/// Common places of a sans-serif TTF (Debian/Ubuntu, Fedora, Arch, macOS).
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

fn find_font() -> Option<PathBuf> {
    if let Some(p) = FONT_CANDIDATES.iter().map(Path::new).find(|p| p.is_file()) {
        return Some(p.to_path_buf());
    }
    let out = std::process::Command::new("fc-match")
        .args(["-f", "%{file}", "sans-serif:fontformat=TrueType"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    path.is_file().then_some(path)
}

/// Registers the font once per process (plotters keeps a global table).
pub(crate) fn ensure_font(explicit: Option<&Path>) -> Result<(), PlotError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let path = match explicit.map(Path::to_path_buf).or_else(find_font) {
            Some(p) => p,
            None => return Err(String::new()),
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters wants &'static font data; one font per process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        for style in [FontStyle::Normal, FontStyle::Bold] {
            register_font(FAMILY, style, bytes)
                .map_err(|_| format!("{}: not a usable TrueType/OpenType font", path.display()))?;
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_empty() => Err(PlotError::NoFont),
        Err(e) => Err(PlotError::Font {
            path: explicit.map(Path::to_path_buf).unwrap_or_default(),
            reason: e.clone(),
        }),
    }
}

/// Draws `runs` (name, report) into `path`; the extension picks SVG or PNG.
pub fn draw(
    path: &Path,
    runs: &[(&str, &IncidentReport)],
    font: Option<&Path>,
) -> Result<(), PlotError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let size = (PANEL.0, PANEL.1 * runs.len().max(1) as u32);
    let fail = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    match ext.as_deref() {
        Some("svg") => {
            ensure_font(font)?;
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_on(root, runs).map_err(fail)
        }
        Some("png") => {
            ensure_font(font)?;
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_on(root, runs).map_err(fail)
        }
        _ => Err(PlotError::Format(path.to_path_buf())),
    }
}

type Segments = Vec<Vec<(f64, f64)>>;

/// Consecutive seconds with a value, as separate line segments (a second
/// without replies leaves a gap instead of a misleading straight line).
fn segments(points: impl Iterator<Item = (f64, Option<f64>)>) -> Segments {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match y {
            Some(y) if y > 0.0 => out.last_mut().expect("never empty").push((x, y)),
            _ => {
                if !out.last().expect("never empty").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The y range (ms) shared by all panels.
fn y_range(runs: &[(&str, &IncidentReport)]) -> (f64, f64) {
    let values = runs.iter().flat_map(|(_, r)| {
        r.timeline.iter().flat_map(|p| {
            [p.cheap_p50_ms, p.cheap_p99_ms, p.raft_commit_p99_ms]
                .into_iter()
                .flatten()
        })
    });
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return (0.01, 1000.0);
    }
    // Whole decades (at least two), so the log axis always has labelled
    // ticks.
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 100.0);
    (lo, hi)
}

fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        // 0.1, 0.01, ...: as many decimals as the first significant digit.
        let decimals = (-v.log10()).ceil().max(1.0) as usize;
        format!("{v:.decimals$}")
    }
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[(&str, &IncidentReport)],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (y_lo, y_hi) = y_range(runs);
    let panels = root.split_evenly((runs.len().max(1), 1));
    for (panel, (name, report)) in panels.iter().zip(runs) {
        let phase = report.settings.phase_secs;
        let total = phase * PHASES as f64;
        let caption = format!(
            "{name}: {} - ordinary clients ({} ops/s) vs {} abusive connections",
            report.endpoint, report.settings.cheap_rate, report.settings.abusers
        );
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..total, (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the baseline started")
            .y_desc("latency, ms (log)")
            .y_label_formatter(&|v| fmt_ms(*v))
            .label_style((FAMILY, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        // The abuse phase shaded, every boundary marked, phases named.
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(phase, y_lo), (2.0 * phase, y_hi)],
                RGBColor(255, 120, 120).mix(0.18).filled(),
            )))
            .map_err(err)?;
        for i in 1..PHASES {
            let x = phase * i as f64;
            chart
                .draw_series(LineSeries::new(
                    [(x, y_lo), (x, y_hi)],
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(err)?;
        }
        let label_y = y_hi / 1.6;
        chart
            .draw_series(PHASE_NAMES.iter().enumerate().map(|(i, n)| {
                Text::new(
                    n.to_string(),
                    (phase * i as f64 + phase * 0.02, label_y),
                    (FAMILY, 15).into_font().color(&BLACK.mix(0.7)),
                )
            }))
            .map_err(err)?;

        let tl = &report.timeline;
        let series: [(&str, RGBColor, Segments); 3] = [
            (
                "ordinary p99",
                RGBColor(214, 39, 40),
                segments(tl.iter().map(|p| (p.t as f64 + 0.5, p.cheap_p99_ms))),
            ),
            (
                "ordinary p50",
                RGBColor(31, 119, 180),
                segments(tl.iter().map(|p| (p.t as f64 + 0.5, p.cheap_p50_ms))),
            ),
            (
                "raft commit p99",
                RGBColor(44, 160, 44),
                segments(tl.iter().map(|p| (p.t as f64 + 0.5, p.raft_commit_p99_ms))),
            ),
        ];
        for (label, color, segs) in series {
            if segs.is_empty() {
                continue;
            }
            for (i, seg) in segs.into_iter().enumerate() {
                let style = color.stroke_width(2);
                let drawn = chart
                    .draw_series(LineSeries::new(seg, style).point_size(2))
                    .map_err(err)?;
                if i == 0 {
                    drawn.label(label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FAMILY, 13))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_break_at_gaps() {
        let s = segments(
            [
                (0.0, Some(1.0)),
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(0.0)),
                (4.0, Some(3.0)),
            ]
            .into_iter(),
        );
        assert_eq!(s, vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(4.0, 3.0)]]);
        assert!(segments(std::iter::empty()).is_empty());
    }

    #[test]
    fn y_axis_spans_whole_decades() {
        assert_eq!(fmt_ms(0.01), "0.01");
        assert_eq!(fmt_ms(250.0), "250");
        assert_eq!(y_range(&[]), (0.01, 1000.0));
    }
}
