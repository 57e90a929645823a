//! `--plot out.png|svg`: overlaid CDFs of baseline and candidate latencies (log-x), with the
//! gated quantiles marked. Written by a helper; see `write_plot`.
//!
//! The image shows, for each side, the empirical CDF "fraction of spans ≤ x" (y, 0..1) against
//! the duration x on a log-10 axis labelled in ns / µs / ms / s. The legend gives each side's
//! label and sample count. Each quantile marker (`p99`, …) is a thin dashed vertical line from the
//! x axis up to the quantile's height at each side's value, in that side's colour, ending in a
//! dot on the curve, with the marker's label beside it.
//!
//! Samples may hold millions of values: each curve is evaluated at points evenly spaced in
//! log-x (binary searches in the sorted input) — 2000 (`CURVE_POINTS`) in SVG, one per 3 pixels
//! in PNG — plus its exact ends, so drawing costs the same for 1k or 1M values. Samples of at
//! most 1000 values are drawn as exact step functions. Durations below 1 ns (zero, negative) are
//! drawn at 1 ns; unsorted input is sorted (a copy) first.
//!
//! Text is rendered with DejaVu Sans, embedded from `assets/` (license in
//! `assets/LICENSE-DejaVu.txt`), so no system font or fontconfig is needed.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What to draw.
#[derive(Debug, Clone)]
pub struct PlotInput<'a> {
    /// Title, e.g. `checkout / POST /api/checkout — p99 +31.2 % (regression)`.
    pub title: String,
    /// Baseline durations in ns, sorted ascending (may be large: 1M values).
    pub baseline: &'a [i64],
    /// Candidate durations in ns, sorted ascending.
    pub candidate: &'a [i64],
    /// Legend labels of the two sides.
    pub baseline_label: String,
    /// Legend label of the candidate.
    pub candidate_label: String,
    /// Quantile markers: (label like "p99", quantile in [0,1], baseline value ns, candidate value ns).
    pub markers: Vec<(String, f64, f64, f64)>,
    /// What one sample is, for the y axis: `spans` or `traces`.
    pub unit: &'a str,
}

/// Plot errors.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Extension other than .png / .svg.
    #[error("--plot {0}: unsupported file type (use a .png or .svg file name)")]
    UnsupportedFormat(String),
    /// Nothing to draw.
    #[error("nothing to plot: {0}")]
    Empty(&'static str),
    /// plotters or file errors.
    #[error("writing plot {path}: {reason}")]
    Draw {
        /// The file being written.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Default image size in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1000, 600);

/// Most points evaluated per CDF curve (the ends of each curve are exact besides).
const CURVE_POINTS: usize = 2000;

/// Accepted image sizes, per dimension.
const MIN_SIZE: (u32, u32) = (240, 180);
const MAX_SIDE: u32 = 8192;

const BASELINE_COLOR: RGBColor = RGBColor(31, 119, 180);
const CANDIDATE_COLOR: RGBColor = RGBColor(230, 85, 13);
/// Largest duration drawn, in ns (`i64::MAX`); smallest is 1 ns.
const MAX_NS: f64 = 9.223_372_036_854_776e18;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font as "sans-serif" once per process.
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "the embedded DejaVu Sans font could not be loaded".to_string())
        })
        .clone()
}

/// The image formats `write_plot` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// `.png`
    Png,
    /// `.svg`
    Svg,
}

/// The format of `path` by its extension (case-insensitive), before any work is done.
pub fn check_format(path: &Path) -> Result<ImageFormat, PlotError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => Ok(ImageFormat::Png),
        Some("svg") => Ok(ImageFormat::Svg),
        _ => Err(PlotError::UnsupportedFormat(path.display().to_string())),
    }
}

/// Writes the plot to `path` as PNG or SVG (chosen by the extension, case-insensitively),
/// `size` = (width, height) in pixels. See the module docs for what is drawn.
pub fn write_plot(path: &Path, input: &PlotInput<'_>, size: (u32, u32)) -> Result<(), PlotError> {
    let is_png = check_format(path)? == ImageFormat::Png;
    if input.baseline.is_empty() && input.candidate.is_empty() {
        return Err(PlotError::Empty(
            "both the baseline and the candidate sample are empty",
        ));
    }
    let draw_err = |reason: String| PlotError::Draw {
        path: path.display().to_string(),
        reason,
    };
    let (w, h) = size;
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(draw_err(format!(
            "image size {w}×{h} out of range ({}×{} to {MAX_SIDE}×{MAX_SIDE})",
            MIN_SIZE.0, MIN_SIZE.1
        )));
    }
    ensure_font().map_err(draw_err)?;
    if is_png {
        draw(
            BitMapBackend::new(path, size).into_drawing_area(),
            input,
            true,
        )
    } else {
        draw(
            SVGBackend::new(path, size).into_drawing_area(),
            input,
            false,
        )
    }
    .map_err(draw_err)
}

/// One side's sample, clamped for the log axis, sorted even if the caller's slice was not.
struct Side<'a> {
    values: Cow<'a, [i64]>,
    label: String,
    color: RGBColor,
}

impl<'a> Side<'a> {
    fn new(values: &'a [i64], label: &str, color: RGBColor) -> Self {
        let values = if values.is_sorted() {
            Cow::Borrowed(values)
        } else {
            let mut v = values.to_vec();
            v.sort_unstable();
            Cow::Owned(v)
        };
        Side {
            label: format!("{label} (n = {})", thousands(values.len())),
            values,
            color,
        }
    }
}

/// log10 of a duration in ns, clamped to [1 ns, i64::MAX ns]; `None` if not a number.
fn log_ns(ns: f64) -> Option<f64> {
    (!ns.is_nan()).then(|| ns.clamp(1.0, MAX_NS).log10())
}

/// Empirical CDF of `sorted` as (log10 ns, fraction ≤ x) points from the axis start `lo` to
/// its end `hi` (both log10): exact steps for small samples, else `grid` (2..=`CURVE_POINTS`)
/// evaluations evenly spaced in log-x over the sample's range, plus 3 end points.
fn cdf_points(sorted: &[i64], lo: f64, hi: f64, grid: usize) -> Vec<(f64, f64)> {
    let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let n = sorted.len() as f64;
    let clamp = |v: i64| (v as f64).max(1.0);
    let (vmin, vmax) = (clamp(first), clamp(last));
    let mut pts = Vec::with_capacity(CURVE_POINTS + 4);
    pts.push((lo, 0.0));
    pts.push((vmin.log10(), 0.0));
    if sorted.len() <= CURVE_POINTS / 2 {
        // Exact step function: a vertical step at each distinct (clamped) value.
        let mut i = 0;
        while i < sorted.len() {
            let x = clamp(sorted[i]);
            let j = i + sorted[i..].partition_point(|&v| clamp(v) <= x);
            pts.push((x.log10(), i as f64 / n));
            pts.push((x.log10(), j as f64 / n));
            i = j.max(i + 1);
        }
    } else {
        let (lmin, lmax) = (vmin.log10(), vmax.log10());
        let grid = grid.clamp(2, CURVE_POINTS);
        let last_i = grid - 1;
        for i in 0..grid {
            let x = match i {
                0 => vmin,
                _ if i == last_i => vmax,
                _ => 10f64.powf(lmin + (lmax - lmin) * i as f64 / last_i as f64),
            };
            let count = sorted.partition_point(|&v| clamp(v) <= x);
            pts.push((x.log10(), count as f64 / n));
        }
    }
    pts.push((hi, 1.0));
    pts
}

/// x-axis range in log10 ns: all values and markers, padded, at least 0.6 decades wide.
fn x_range(sides: &[Side<'_>], markers: &[(String, f64, f64, f64)]) -> (f64, f64) {
    let ends = sides
        .iter()
        .flat_map(|s| [s.values.first(), s.values.last()]);
    let values = ends.flatten().map(|&v| v as f64);
    let marks = markers
        .iter()
        .flat_map(|m| [m.2, m.3])
        .filter(|v| v.is_finite());
    let logs = values.chain(marks).filter_map(log_ns);
    let (lmin, lmax) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), l| {
        (a.min(l), b.max(l))
    });
    if !(lmin.is_finite() && lmax.is_finite()) {
        return (-0.3, 0.3);
    }
    let span = lmax - lmin;
    let pad = (span * 0.03).max(0.05).max((0.6 - span) / 2.0);
    (lmin - pad, lmax + pad)
}

/// Tick positions (log10 ns) on [lo, hi]: labelled (bold) ones and light grid lines.
fn x_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let span = hi - lo;
    let (mults, every): (&[f64], i64) = if span <= 1.2 {
        (&[1., 2., 3., 4., 5., 6., 7., 8., 9.], 1)
    } else if span <= 4.5 {
        (&[1., 2., 5.], 1)
    } else {
        (&[1.], ((span / 10.0).ceil() as i64).max(1))
    };
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    // lo and hi lie within about [-1, 20]; the cast cannot overflow and the loop is short.
    for k in (lo.floor() as i64)..=(hi.ceil() as i64) {
        for m in 1..=9 {
            let x = k as f64 + f64::from(m).log10();
            if x < lo || x > hi {
                continue;
            }
            if k.rem_euclid(every) == 0 && mults.contains(&f64::from(m)) {
                bold.push(x);
            } else if span <= 10.0 {
                light.push(x);
            }
        }
    }
    if bold.len() < 2 {
        bold = vec![lo, hi];
    }
    (bold, light)
}

/// A linear f64 axis with fixed labelled (bold) and light tick positions. (plotters'
/// `with_key_points` cannot be used on f64 axes with `configure_mesh`: no label formatter.)
struct TickAxis {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for TickAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        let t = if t.is_finite() {
            t.clamp(-1.0, 2.0)
        } else {
            0.5
        };
        limit.0 + (f64::from(limit.1 - limit.0) * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for TickAxis {
    fn format(value: &f64) -> String {
        format!("{value:.1}")
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A duration in ns, human-readable with 3 significant digits: `250 ns`, `1.5 µs`, `20 ms`, `3 s`.
pub(crate) fn format_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "?".to_string();
    }
    let rounded = if ns == 0.0 {
        0.0
    } else {
        let scale = 10f64.powi(2 - ns.abs().log10().floor() as i32);
        (ns * scale).round() / scale
    };
    let (v, unit) = match rounded.abs() {
        a if a < 1e3 => (rounded, "ns"),
        a if a < 1e6 => (rounded / 1e3, "µs"),
        a if a < 1e9 => (rounded / 1e6, "ms"),
        _ => (rounded / 1e9, "s"),
    };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {unit}")
}

/// Draws the plot; `raster`: a bitmap (coarser curves look better there).
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    input: &PlotInput<'_>,
    raster: bool,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let sides = [
        Side::new(input.baseline, &input.baseline_label, BASELINE_COLOR),
        Side::new(input.candidate, &input.candidate_label, CANDIDATE_COLOR),
    ];
    let (lo, hi) = x_range(&sides, &input.markers);
    let (bold, light) = x_ticks(lo, hi);
    let y_ticks: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect();

    let (w, h) = root.dim_in_pixel();
    let s = (f64::from(h) / 600.0)
        .min(f64::from(w) / 1000.0)
        .clamp(0.8, 4.0);
    let px = |v: f64| (v * s).round() as u32;
    let font = |size: f64| ("sans-serif", size * s);
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&input.title, font(20.0))
        .margin(px(12.0))
        .x_label_area_size(px(50.0))
        .y_label_area_size(px(70.0))
        .build_cartesian_2d(
            TickAxis {
                lo,
                hi,
                bold,
                light,
            },
            TickAxis {
                lo: 0.0,
                hi: 1.02,
                bold: y_ticks,
                light: Vec::new(),
            },
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("duration (log scale)")
        .y_desc(format!("fraction of {} ≤ x", input.unit))
        .x_label_formatter(&|x| format_ns(10f64.powf(*x)))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(font(13.0))
        .axis_desc_style(font(15.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.05))
        .draw()
        .map_err(err)?;

    let stroke = px(2.0).max(1);
    // Bitmaps: a curve point per 3 pixels (finer makes plotters' thick strokes ragged).
    let grid = if raster {
        chart.plotting_area().get_pixel_range().0.len() / 3
    } else {
        CURVE_POINTS
    };
    for side in sides.iter().filter(|s| !s.values.is_empty()) {
        let style = side.color.stroke_width(stroke);
        chart
            .draw_series(LineSeries::new(
                cdf_points(&side.values, lo, hi, grid),
                style,
            ))
            .map_err(err)?
            .label(side.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }

    // Quantile markers, top (highest quantile) first so that their labels can be staggered.
    let mut markers: Vec<_> = input.markers.iter().filter(|m| !m.1.is_nan()).collect();
    markers.sort_by(|a, b| b.1.total_cmp(&a.1));
    let label_style = TextStyle::from(font(12.0).into_font()).color(&BLACK);
    let (plot_x, _) = chart.plotting_area().get_pixel_range();
    let mut next_free_y = i32::MIN;
    for (label, q, b, c) in markers {
        let q = q.clamp(0.0, 1.0);
        let mut right = None::<(f64, i32)>;
        for (side, value) in sides.iter().zip([*b, *c]) {
            let Some(x) = log_ns(value).filter(|_| value.is_finite() && !side.values.is_empty())
            else {
                continue;
            };
            let dashed = DashedLineSeries::new(
                [(x, 0.0), (x, q)],
                px(5.0),
                px(4.0),
                side.color.stroke_width(1),
            );
            chart.draw_series(dashed).map_err(err)?;
            let dot = Circle::new((x, q), px(3.0), side.color.filled());
            chart.draw_series(std::iter::once(dot)).map_err(err)?;
            let (pix, _) = chart.backend_coord(&(x, q));
            if right.is_none_or(|(_, r)| pix > r) {
                right = Some((x, pix));
            }
        }
        let Some((x, _)) = right else { continue };
        // The label sits just below its dot (clear of the curves' flat top), below the last one.
        let (pix, piy) = chart.backend_coord(&(x, q));
        let y = (piy + px(3.0) as i32).max(next_free_y);
        next_free_y = y + px(14.0) as i32;
        let gap = px(6.0) as i32;
        let (pos, tx) = if pix + px(60.0) as i32 > plot_x.end {
            (Pos::new(HPos::Right, VPos::Top), pix - gap)
        } else {
            (Pos::new(HPos::Left, VPos::Top), pix + gap)
        };
        root.draw(&Text::new(label.as_str(), (tx, y), label_style.pos(pos)))
            .map_err(err)?;
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .margin(px(12.0))
        .label_font(font(14.0))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests;
