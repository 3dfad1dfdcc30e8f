//! The HTML report's charts: a run's [`Timeline`](super::timeline::Timeline),
//! fault windows and `/admin/backends` samples drawn as inline SVG.
//!
//! Drawn with plotters' SVG backend, text as SVG `<text>` for the browser
//! to set (no fonts read here). Every chart is [`WIDTH`] wide with the same
//! margins, so their time axes (seconds from scenario start, [`TimeAxis`])
//! line up one above the other; every fault window is shaded in each. A
//! chart's key is returned as [`Key`]s for the page to print beside it as
//! text, so no series is told apart by colour alone: dashes, labels inside
//! the strips and the key's words say it too.
//!
//! The rate and latency charts draw the timeline they are given, the
//! report's at the resolution [`resolution`](super::resolution) chose for
//! it, and say in their caption what one point covers. Text from outside
//! is written with its control characters replaced
//! ([`controls`](super::controls)).

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::time::Duration;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::RunReport;
use super::controls::one_line;
use super::format::duration;
use super::timeline::{BackendSample, BackendState, Bucket, FaultSpan, Timeline};
use crate::admin::SAMPLE_INTERVAL;
use crate::clock::whole_micros;
use crate::scenario::FailureKind;

/// Every chart's width, in pixels.
pub const WIDTH: u32 = 1100;
/// The height of a chart of rates or latencies, in pixels.
const PLOT_HEIGHT: u32 = 250;
/// The space left of the plotting area (the y axis and its labels), the
/// same in every chart so that their time axes line up.
const Y_LABELS: u32 = 110;
/// The space below the plotting area (the time axis and its title).
const X_LABELS: u32 = 44;
const MARGIN: u32 = 14;
/// One row of the backend strip: three lanes, the breaker or the
/// backend's state on top, endpoints down in the middle, endpoints ejected
/// at the bottom.
const STRIP_ROW: u32 = 66;
const FONT: &str = "sans-serif";
/// The font size given to plotters, which writes it as `size / 1.24` px.
const FONT_SIZE: f64 = 16.0;
/// About how wide one character of that font is, in pixels.
const CHAR_PX: i32 = 7;

/// Colours told apart with colour blindness (Okabe and Ito's palette).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 94, 60),
];
/// The colours of error labels, none of them the calls' black: the
/// [`USUAL_ERRORS`] have one each, any other label one chosen by a hash of
/// its text ([`error_colour`]), so a label has the same colour on every
/// page; an unusual label may share a colour with another.
const ERROR_PALETTE: [RGBColor; 8] = [
    PALETTE[1],
    PALETTE[2],
    PALETTE[3],
    PALETTE[4],
    PALETTE[5],
    PALETTE[6],
    PALETTE[0],
    RGBColor(150, 30, 60),
];
const INK: RGBColor = RGBColor(34, 34, 34);
const ROW_SHADE: RGBColor = RGBColor(242, 242, 242);
const FAULT_SHADE: RGBColor = RGBColor(250, 230, 180);
/// How opaque a fault window's shade is (where two overlap, it is darker).
const FAULT_OPACITY: f64 = 0.55;
const BREAKER_OPEN: RGBColor = RGBColor(200, 40, 40);
const HALF_OPEN: RGBColor = RGBColor(235, 160, 30);
const NOT_CONNECTED: RGBColor = RGBColor(140, 140, 140);
const ENDPOINT_DOWN: RGBColor = RGBColor(80, 80, 80);
const EJECTED: RGBColor = RGBColor(125, 70, 170);

/// A series' points: seconds from scenario start, and a value.
type Points = Vec<(f64, f64)>;
type Drawn<T = ()> = Result<T, Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Plot<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// A drawn chart, the key to its series and what a reader needs to know
/// to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The `<svg>` element.
    pub svg: String,
    /// One entry per series, in drawing order.
    pub legend: Vec<Key>,
    /// A sentence or two under the chart: what one point covers, when a
    /// count is counted.
    pub caption: String,
}

/// One series of a chart, as the key names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// What the series shows.
    pub label: String,
    /// Its colour, `#rrggbb`.
    pub colour: String,
    /// How it is drawn.
    pub mark: Mark,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// A filled area or band.
    Area,
}

/// The time axis every chart of one run shares: from scenario start to
/// the last thing recorded (a point of the timeline as drawn, a fault
/// window or a sample).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeAxis {
    end_secs: f64,
}

impl TimeAxis {
    /// The axis of `report`'s charts, its `timeline` as they draw it.
    pub fn of(report: &RunReport, timeline: &Timeline) -> Self {
        let buckets_end = timeline
            .buckets
            .last()
            .map_or(0, |b| b.at_us.saturating_add(timeline.bucket_us));
        let faults_end = report.faults.iter().map(|f| f.to_us).max().unwrap_or(0);
        let samples_end = report.backends.last().map_or(0, |s| s.at_us);
        let end_us = buckets_end.max(faults_end).max(samples_end);
        Self {
            end_secs: secs(end_us).max(1.0),
        }
    }
}

/// Client calls sent per second (by when they were sent), and the calls
/// that failed per second (by when they were answered) stacked by error
/// label (named inside where they fit), over the fault windows with their
/// names; `timeline` is the report's at the resolution to draw.
pub fn traffic(report: &RunReport, timeline: &Timeline, axis: TimeAxis) -> Drawn<Chart> {
    let labels = keys_in(timeline, |b| &b.errors);
    // Each label's band is drawn from zero to the sum of it and the
    // labels before it, the highest first, so the bands stack.
    let mut below = vec![0.0; timeline.buckets.len()];
    let stacks: Vec<(String, Points)> = labels
        .iter()
        .map(|label| {
            let tops = rate_points(timeline, |b, i| {
                below[i] += b.errors.get(*label).copied().unwrap_or(0) as f64;
                below[i]
            });
            ((*label).to_owned(), tops)
        })
        .collect();
    let sent = rate_points(timeline, |b, _| b.started as f64);
    let room_for_names = if report.faults.is_empty() {
        1.0
    } else {
        ROOM_FOR_FAULT_NAMES
    };
    let top = room_for_names
        * headroom(
            sent.iter()
                .chain(stacks.iter().flat_map(|(_, tops)| tops))
                .map(|p| p.1),
        );
    let mut legend = vec![Key::new("calls sent / s", INK, Mark::Line)];
    let svg = draw(PLOT_HEIGHT, |root| {
        let mut chart = frame(root, axis, 0.0..top)?;
        mesh(&mut chart, "calls / s", &plain_number)?;
        shade_faults(&mut chart, &report.faults, (0.0, top))?;
        for (label, tops) in stacks.iter().rev() {
            let colour = error_colour(label);
            chart.draw_series(
                AreaSeries::new(tops.iter().copied(), 0.0, colour.filled()).border_style(colour),
            )?;
        }
        draw_line(&mut chart, &sent, INK, Mark::Line)?;
        let names_end = name_faults(root, &chart, &report.faults, top)?;
        name_bands(root, &chart, &stacks, names_end)
    })?;
    let ours = !report.against_another_gateway();
    legend.extend(stacks.iter().map(|(label, _)| {
        Key::new(
            &format!("failed / s, by when answered: {}", error_name(label, ours)),
            error_colour(label),
            Mark::Area,
        )
    }));
    let caption = format!(
        "Each point: {}. Calls sent are counted when they were sent, failed calls when they were answered.",
        point_width(timeline)
    );
    Ok(Chart {
        svg,
        legend,
        caption,
    })
}

/// The median and 99th percentile latency of the calls that ended in
/// each point of `timeline`, and the median of those that failed (fast
/// refusals, slow timeouts), on a logarithmic scale (a hung call and a fast
/// one on one chart), or `None` when no point has a latency.
pub fn latency(report: &RunReport, timeline: &Timeline, axis: TimeAxis) -> Drawn<Option<Chart>> {
    let series = [
        (
            latency_runs(timeline, |b| b.p50_us),
            "p50 of all calls",
            PALETTE[0],
            Mark::Line,
        ),
        (
            latency_runs(timeline, |b| b.p99_us),
            "p99 of all calls",
            PALETTE[1],
            Mark::Dashed,
        ),
        (
            latency_runs(timeline, |b| b.failed_p50_us),
            "p50 of failed calls",
            PALETTE[3],
            Mark::Line,
        ),
    ];
    let values = || series.iter().flat_map(|s| &s.0).flatten().map(|p| p.1);
    let Some(low) = values().reduce(f64::min) else {
        return Ok(None);
    };
    let high = values().fold(low, f64::max);
    let range = (low / 2.0).max(0.001)..(high * 2.0);
    let svg = draw(PLOT_HEIGHT, |root| {
        let mut chart = frame(root, axis, range.clone().log_scale())?;
        mesh(&mut chart, "latency (log scale)", &|ms| {
            duration(Duration::from_secs_f64(ms.max(0.0) / 1e3))
        })?;
        shade_faults(&mut chart, &report.faults, (range.start, range.end))?;
        for (runs, _, colour, mark) in &series {
            for run in runs {
                draw_line(&mut chart, run, *colour, *mark)?;
            }
        }
        Ok(())
    })?;
    let legend = series
        .iter()
        .filter(|(runs, ..)| !runs.is_empty())
        .map(|(_, label, colour, mark)| Key::new(label, *colour, *mark))
        .collect();
    let caption = format!(
        "Each point: {}, the calls answered in it (latency from when a call was due).",
        point_width(timeline)
    );
    Ok(Some(Chart {
        svg,
        legend,
        caption,
    }))
}

/// `tools/call` requests each fake received per second (solid, named at
/// its highest), and of those the ones that did not succeed (dashed, same
/// colour): ejection,
/// an open breaker, a canary split and failover show as traffic moving
/// between fakes. `None` when no fake received anything.
pub fn fakes(report: &RunReport, timeline: &Timeline, axis: TimeAxis) -> Drawn<Option<Chart>> {
    let names = keys_in(timeline, |b| &b.fakes);
    if names.is_empty() {
        return Ok(None);
    }
    let received = |name: &str, failed_only: bool| {
        rate_points(timeline, |b, _| {
            b.fakes.get(name).map_or(0.0, |outcomes| {
                outcomes
                    .iter()
                    .filter(|(outcome, _)| !failed_only || *outcome != SUCCESS)
                    .map(|(_, n)| *n as f64)
                    .sum()
            })
        })
    };
    let series: Vec<(&str, Points, Points)> = names
        .iter()
        .map(|name| (*name, received(name, false), received(name, true)))
        .collect();
    let top = headroom(series.iter().flat_map(|(_, all, _)| all).map(|p| p.1));
    let svg = draw(PLOT_HEIGHT, |root| {
        let mut chart = frame(root, axis, 0.0..top)?;
        mesh(&mut chart, "requests / s", &plain_number)?;
        shade_faults(&mut chart, &report.faults, (0.0, top))?;
        for (n, (_, all, failed)) in series.iter().enumerate() {
            let colour = PALETTE[n % PALETTE.len()];
            draw_line(&mut chart, all, colour, Mark::Line)?;
            draw_line(&mut chart, failed, colour, Mark::Dashed)?;
        }
        let lines: Vec<(&str, &Points)> =
            series.iter().map(|(name, all, _)| (*name, all)).collect();
        name_lines(root, &chart, &lines)
    })?;
    let legend = series
        .iter()
        .enumerate()
        .flat_map(|(n, (name, _, _))| {
            let colour = PALETTE[n % PALETTE.len()];
            [
                Key::new(&format!("{name}: all requests"), colour, Mark::Line),
                Key::new(&format!("{name}: not success"), colour, Mark::Dashed),
            ]
        })
        .collect();
    let caption = format!("Each point: {}.", point_width(timeline));
    Ok(Some(Chart {
        svg,
        legend,
        caption,
    }))
}

/// The journal's outcome label of a request that succeeded.
pub const SUCCESS: &str = "success";

/// One strip per backend from the `/admin/backends` samples, in three
/// lanes: its breaker open or half-open, or the backend not connected; how
/// many of its endpoints were down (not connected); how many were ejected.
/// Each sample stands for the time from halfway since the one before to
/// halfway to the one after; each stretch is named inside it where it is
/// wide enough. `None` without samples.
pub fn backends(report: &RunReport, axis: TimeAxis) -> Drawn<Option<Chart>> {
    let mut samples: Vec<&BackendSample> = report.backends.iter().collect();
    samples.sort_by_key(|s| s.at_us);
    if samples.is_empty() {
        return Ok(None);
    }
    let mut names: Vec<&str> = Vec::new();
    for backend in samples.iter().flat_map(|s| &s.backends) {
        if !names.contains(&backend.name.as_str()) {
            names.push(&backend.name);
        }
    }
    let interval = sample_interval(&samples);
    let spans = centred_spans(&samples, interval);
    let rows = names.len() as f64;
    let height = names.len() as u32 * STRIP_ROW + X_LABELS + 2 * MARGIN;
    let svg = draw(height, |root| {
        let mut chart = frame(root, axis, 0.0..rows)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("seconds from scenario start")
            .x_label_formatter(&plain_number)
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(INK.mix(0.08))
            .axis_desc_style((FONT, FONT_SIZE))
            .label_style((FONT, FONT_SIZE))
            .draw()?;
        // Each row's extent, faintly, so a band reads as its backend's.
        chart.draw_series((0..names.len()).map(|row| {
            let base = row as f64;
            Rectangle::new(
                [(0.0, base + 0.97), (axis.end_secs, base + 0.03)],
                ROW_SHADE.filled(),
            )
        }))?;
        shade_faults(&mut chart, &report.faults, (0.0, rows))?;
        let lanes: [(Lane, f64); 3] = [(health, 0.68), (endpoints_down, 0.36), (ejections, 0.04)];
        for (row, name) in names.iter().enumerate() {
            // The first backend on top.
            let base = rows - row as f64 - 1.0;
            let (px, py) = chart.backend_coord(&(0.0, base + 0.5));
            write_text(
                root,
                &cut(name, (Y_LABELS as i32 - 12) / CHAR_PX),
                (px - 8, py),
                text_style(INK, HPos::Right, VPos::Center),
            )?;
            for (shown, low) in lanes {
                let states = samples.iter().zip(&spans).map(|(sample, (from, to))| {
                    let state = sample.backends.iter().find(|b| b.name == *name);
                    (*from, *to, state.and_then(shown))
                });
                for (from, to, (label, colour)) in stretches(states) {
                    band(
                        root,
                        &mut chart,
                        (secs(from), secs(to)),
                        (base + low, base + low + 0.28),
                        &label,
                        colour,
                    )?;
                }
            }
        }
        Ok(())
    })?;
    Ok(Some(Chart {
        svg,
        legend: vec![
            Key::new("breaker open", BREAKER_OPEN, Mark::Area),
            Key::new("breaker half-open", HALF_OPEN, Mark::Area),
            Key::new("backend not connected", NOT_CONNECTED, Mark::Area),
            Key::new("endpoints down (middle lane)", ENDPOINT_DOWN, Mark::Area),
            Key::new("endpoints ejected (bottom lane)", EJECTED, Mark::Area),
        ],
        caption: format!(
            "Sampled every {}; each sample is drawn from halfway since the one before to halfway to the one after.",
            duration(Duration::from_micros(interval))
        ),
    }))
}

/// What one lane of a backend's strip shows of its state, if anything: a
/// label and a colour.
type Lane = fn(&BackendState) -> Option<(String, RGBColor)>;

/// The usual time between samples (the median gap), in microseconds;
/// the harness's own interval when there is no gap to measure.
fn sample_interval(samples: &[&BackendSample]) -> u64 {
    let mut gaps: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].at_us.saturating_sub(w[0].at_us))
        .collect();
    gaps.sort_unstable();
    match gaps.get(gaps.len() / 2) {
        Some(gap) if *gap > 0 => *gap,
        _ => whole_micros(SAMPLE_INTERVAL),
    }
}

/// The time each sample (in time order) stands for: from halfway since the
/// one before to halfway to the one after; the first and last reach half
/// an `interval` out.
fn centred_spans(samples: &[&BackendSample], interval: u64) -> Vec<(u64, u64)> {
    let at: Vec<u64> = samples.iter().map(|s| s.at_us).collect();
    let halfway = |a: u64, b: u64| a / 2 + b / 2 + (a % 2 + b % 2) / 2;
    (0..at.len())
        .map(|i| {
            let from = match i.checked_sub(1) {
                Some(before) => halfway(at[before], at[i]),
                None => at[i].saturating_sub(interval / 2),
            };
            let to = match at.get(i + 1) {
                Some(after) => halfway(at[i], *after),
                None => at[i].saturating_add(interval / 2),
            };
            (from, to)
        })
        .collect()
}

/// What the top lane of a backend's strip shows, if anything.
fn health(backend: &BackendState) -> Option<(String, RGBColor)> {
    match (backend.breaker.as_deref(), backend.state.as_str()) {
        (Some("open"), _) => Some(("breaker open".into(), BREAKER_OPEN)),
        (Some("half_open"), _) => Some(("half-open".into(), HALF_OPEN)),
        (_, "connected") => None,
        (_, state) => Some((state.to_owned(), NOT_CONNECTED)),
    }
}

/// What the middle lane shows: its endpoints not connected.
fn endpoints_down(backend: &BackendState) -> Option<(String, RGBColor)> {
    let down = backend
        .endpoints
        .iter()
        .filter(|e| e.state != "connected")
        .count();
    (down > 0).then(|| {
        let total = backend.endpoints.len();
        (format!("{down} of {total} down"), ENDPOINT_DOWN)
    })
}

/// What the bottom lane shows: its ejected endpoints.
fn ejections(backend: &BackendState) -> Option<(String, RGBColor)> {
    let ejected = backend.endpoints.iter().filter(|e| e.ejected).count();
    (ejected > 0).then(|| {
        let total = backend.endpoints.len();
        (format!("{ejected} of {total} ejected"), EJECTED)
    })
}

/// Runs of equal values merged into one stretch each; stretches without
/// a value are dropped.
fn stretches<T: PartialEq>(
    spans: impl Iterator<Item = (u64, u64, Option<T>)>,
) -> Vec<(u64, u64, T)> {
    let mut merged: Vec<(u64, u64, T)> = Vec::new();
    let mut last_end = None;
    for (from, to, value) in spans {
        let Some(value) = value else {
            last_end = None;
            continue;
        };
        match merged.last_mut() {
            Some((_, end, same)) if *same == value && last_end == Some(from) => *end = to,
            _ => merged.push((from, to, value)),
        }
        last_end = Some(to);
    }
    merged
}

/// A filled band of the strip from `x.0` to `x.1` seconds, named inside
/// when the name fits.
fn band(
    root: &Area<'_>,
    chart: &mut Plot<'_, '_, RangedCoordf64>,
    x: (f64, f64),
    y: (f64, f64),
    label: &str,
    colour: RGBColor,
) -> Drawn {
    chart.draw_series(std::iter::once(Rectangle::new(
        [(x.0, y.1), (x.1, y.0)],
        colour.filled(),
    )))?;
    let (left, middle) = chart.backend_coord(&(x.0, (y.0 + y.1) / 2.0));
    let (right, _) = chart.backend_coord(&(x.1, y.0));
    if right - left >= text_px(label) {
        write_text(
            root,
            label,
            (left + 4, middle),
            text_style(WHITE, HPos::Left, VPos::Center),
        )?;
    }
    Ok(())
}

/// Draws into an SVG of [`WIDTH`] × `height` on white.
fn draw(height: u32, paint: impl FnOnce(&Area<'_>) -> Drawn) -> Drawn<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        paint(&root)?;
        root.present()?;
    }
    Ok(svg)
}

/// The plotting area over `axis` and `y`, with the margins every chart shares.
fn frame<'a, 'b, Y: AsRangedCoord<Value = f64>>(
    root: &'a Area<'b>,
    axis: TimeAxis,
    y: Y,
) -> Drawn<Plot<'a, 'b, Y::CoordDescType>> {
    Ok(ChartBuilder::on(root)
        .margin(MARGIN)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(0.0..axis.end_secs, y)?)
}

/// The grid, the axes and their titles; `y_label` writes a value of the y axis.
fn mesh<Y>(chart: &mut Plot<'_, '_, Y>, y_title: &str, y_label: &dyn Fn(&f64) -> String) -> Drawn
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("seconds from scenario start")
        .x_label_formatter(&plain_number)
        .y_desc(y_title)
        .y_label_formatter(y_label)
        .y_labels(6)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(INK.mix(0.08))
        .axis_desc_style((FONT, FONT_SIZE))
        .label_style((FONT, FONT_SIZE))
        .draw()?;
    Ok(())
}

/// The key to the fault windows' shade, in the colour one window has on
/// the charts' white.
pub fn fault_window_key() -> Key {
    let on_white =
        |c: u8| (f64::from(c) * FAULT_OPACITY + 255.0 * (1.0 - FAULT_OPACITY)).round() as u8;
    let RGBColor(r, g, b) = FAULT_SHADE;
    Key::new(
        "fault window",
        RGBColor(on_white(r), on_white(g), on_white(b)),
        Mark::Area,
    )
}

/// Each fault window shaded over the chart's height `y`.
fn shade_faults<Y>(chart: &mut Plot<'_, '_, Y>, faults: &[FaultSpan], y: (f64, f64)) -> Drawn
where
    Y: Ranged<ValueType = f64>,
{
    chart.draw_series(faults.iter().map(|fault| {
        Rectangle::new(
            [(secs(fault.from_us), y.1), (secs(fault.to_us), y.0)],
            FAULT_SHADE.mix(FAULT_OPACITY).filled(),
        )
    }))?;
    Ok(())
}

/// The lines at the top of a chart kept for fault names.
const FAULT_NAME_LINES: usize = 2;
/// How much higher a chart with fault names reaches, so that its highest
/// values mostly stay below the names.
const ROOM_FOR_FAULT_NAMES: f64 = 1.25;
/// The height of a line of text, in pixels.
const LINE_PX: i32 = 16;

/// Each fault's name once, at the top left of its first window, on the
/// first of [`FAULT_NAME_LINES`] lines where it does not run into an
/// earlier name; a name that fits on none is left to the fault table.
/// Returns where the lines of names end (pixels from the top).
fn name_faults(
    root: &Area<'_>,
    chart: &Plot<'_, '_, RangedCoordf64>,
    faults: &[FaultSpan],
    top: f64,
) -> Drawn<i32> {
    let (_, y) = chart.backend_coord(&(0.0, top));
    let mut line_ends = [None::<i32>; FAULT_NAME_LINES];
    let mut named = BTreeSet::new();
    for fault in faults {
        if !named.insert(fault.label.as_str()) {
            continue;
        }
        let (x, _) = chart.backend_coord(&(secs(fault.from_us), top));
        let free = line_ends
            .iter()
            .position(|end| end.is_none_or(|end| end < x));
        let Some(line) = free else { continue };
        line_ends[line] = Some(x + text_px(&fault.label) + CHAR_PX);
        write_text(
            root,
            &fault.label,
            (x + 4, y + 4 + LINE_PX * line as i32),
            text_style(INK, HPos::Left, VPos::Top),
        )?;
    }
    let lines = line_ends.iter().filter(|end| end.is_some()).count() as i32;
    Ok(y + 4 + LINE_PX * lines)
}

/// Each stacked band named at the middle of its thickest stretch: inside
/// where a line of text fits, else just above when nothing is stacked on
/// it there; never above `below_px`, where the fault names are (a name
/// that would be is put just below them). `stacks` holds each band's top,
/// the lowest band first.
fn name_bands(
    root: &Area<'_>,
    chart: &Plot<'_, '_, RangedCoordf64>,
    stacks: &[(String, Points)],
    below_px: i32,
) -> Drawn {
    for (n, (label, tops)) in stacks.iter().enumerate() {
        let bottom = |i: usize| if n == 0 { 0.0 } else { stacks[n - 1].1[i].1 };
        let thickness: Vec<f64> = tops
            .iter()
            .enumerate()
            .map(|(i, p)| p.1 - bottom(i))
            .collect();
        let Some(run) = thickest_run(&thickness) else {
            continue;
        };
        let middle = (run.start + run.end - 1) / 2;
        let (x, top) = tops[middle];
        let (left, _) = chart.backend_coord(&(tops[run.start].0, top));
        let (right, y_top) = chart.backend_coord(&(tops[run.end - 1].0, top));
        let (px, y_low) = chart.backend_coord(&(x, bottom(middle)));
        let inside = ((y_top + y_low) / 2).max(below_px + LINE_PX / 2);
        let fits_inside = inside + LINE_PX / 2 <= y_low && right - left >= text_px(label);
        let on_top = stacks[n + 1..]
            .iter()
            .all(|(_, above)| above[middle].1 <= top);
        let at = if fits_inside {
            Some(((px, inside), VPos::Center))
        } else if on_top && y_top - 3 - LINE_PX >= below_px {
            Some(((px, y_top - 3), VPos::Bottom))
        } else if on_top {
            Some(((px, below_px), VPos::Top))
        } else {
            None
        };
        if let Some((at, v)) = at {
            write_text(root, label, at, text_style(INK, HPos::Center, v))?;
        }
    }
    Ok(())
}

/// The longest run of buckets whose thickness is within a fifth of the
/// largest; `None` when every one is empty.
fn thickest_run(thickness: &[f64]) -> Option<std::ops::Range<usize>> {
    let most = thickness.iter().copied().fold(0.0, f64::max);
    if most <= 0.0 {
        return None;
    }
    let mut best = 0..0;
    let mut start = None;
    for (i, t) in thickness.iter().chain([&0.0]).enumerate() {
        match (start, *t >= most * 0.8) {
            (None, true) => start = Some(i),
            (Some(from), false) => {
                if i - from > best.len() {
                    best = from..i;
                }
                start = None;
            }
            _ => {}
        }
    }
    Some(best)
}

/// Each line named just above its highest point (its first, if several).
fn name_lines(
    root: &Area<'_>,
    chart: &Plot<'_, '_, RangedCoordf64>,
    lines: &[(&str, &Points)],
) -> Drawn {
    let (right_edge, _) = chart.backend_coord(&(chart.x_range().end, 0.0));
    for (name, points) in lines {
        let highest = points
            .iter()
            .copied()
            .reduce(|best, p| if p.1 > best.1 { p } else { best });
        let Some(point) = highest else { continue };
        let (x, y) = chart.backend_coord(&point);
        let (x, h) = if x + text_px(name) + 4 > right_edge {
            (x - 4, HPos::Right)
        } else {
            (x + 4, HPos::Left)
        };
        write_text(root, name, (x, y - 3), text_style(INK, h, VPos::Bottom))?;
    }
    Ok(())
}

/// A line through `points`, solid or dashed as `mark` says, with a dot
/// where it is a single point (a line through one point draws nothing).
fn draw_line<Y>(
    chart: &mut Plot<'_, '_, Y>,
    points: &[(f64, f64)],
    colour: RGBColor,
    mark: Mark,
) -> Drawn
where
    Y: Ranged<ValueType = f64>,
{
    let style = colour.stroke_width(2);
    if mark == Mark::Dashed {
        chart.draw_series(DashedLineSeries::new(points.to_vec(), 6, 4, style))?;
    } else {
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
    }
    if let [point] = points {
        chart.draw_series(std::iter::once(Circle::new(*point, 3, colour.filled())))?;
    }
    Ok(())
}

/// What one point of `timeline` covers: `100ms`, `1s`.
fn point_width(timeline: &Timeline) -> String {
    duration(Duration::from_micros(timeline.bucket_us))
}

/// A value per bucket, per second, at the bucket's middle.
fn rate_points(timeline: &Timeline, mut count: impl FnMut(&Bucket, usize) -> f64) -> Points {
    let per_second = 1e6 / timeline.bucket_us.max(1) as f64;
    timeline
        .buckets
        .iter()
        .enumerate()
        .map(|(n, b)| (middle(timeline, b), count(b, n) * per_second))
        .collect()
}

/// The runs of consecutive buckets that have a latency, in milliseconds.
fn latency_runs(timeline: &Timeline, of: impl Fn(&Bucket) -> Option<u64>) -> Vec<Points> {
    let mut runs: Vec<Points> = vec![Vec::new()];
    for bucket in &timeline.buckets {
        match of(bucket) {
            Some(us) => runs
                .last_mut()
                .unwrap_or_else(|| unreachable!("runs starts non-empty"))
                .push((middle(timeline, bucket), us.max(1) as f64 / 1e3)),
            None => runs.push(Vec::new()),
        }
    }
    runs.retain(|run| !run.is_empty());
    runs
}

/// Every key of a map that the buckets hold (error labels, fake names), sorted.
fn keys_in<'t, V: 't>(
    timeline: &'t Timeline,
    map: impl Fn(&'t Bucket) -> &'t BTreeMap<String, V>,
) -> BTreeSet<&'t str> {
    timeline
        .buckets
        .iter()
        .flat_map(|b| map(b).keys().map(String::as_str))
        .collect()
}

fn middle(timeline: &Timeline, bucket: &Bucket) -> f64 {
    secs(bucket.at_us.saturating_add(timeline.bucket_us / 2))
}

/// The top of a chart whose highest value is the largest of `values`.
fn headroom(values: impl Iterator<Item = f64>) -> f64 {
    (values.fold(0.0, f64::max) * 1.15).max(1.0)
}

/// The error labels seen most (our proxy's codes for a backend
/// unavailable, a transport failure, a timeout and a refusal, a backend's
/// internal error, and the harness's own labels), each with its colour of
/// [`ERROR_PALETTE`].
const USUAL_ERRORS: [&str; 8] = [
    "-32010",
    "-32011",
    "-32013",
    "-32014",
    "-32603",
    "tool_error",
    "transport",
    "hung",
];

/// The colour of an error label, the same on every page: its own for a
/// usual one, else by a hash (FNV-1a) of its text.
fn error_colour(label: &str) -> RGBColor {
    let index = USUAL_ERRORS.iter().position(|usual| *usual == label);
    let index = index.unwrap_or_else(|| {
        let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % ERROR_PALETTE.len() as u64) as usize
    });
    ERROR_PALETTE[index]
}

/// An error label as the key names it: the code and what it means when
/// it is one of our proxy's codes and the proxy was ours (`-32010
/// unavailable`), else the label as it is.
fn error_name(label: &str, ours: bool) -> String {
    let kind = label
        .parse::<i64>()
        .ok()
        .filter(|_| ours)
        .and_then(FailureKind::of_our_code);
    match kind {
        Some(kind) => format!("{label} {}", kind.name()),
        None => label.to_owned(),
    }
}

/// An axis value with at most one decimal, none when it is whole: `2`, `0.5`.
fn plain_number(value: &f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Writes `text` at `at`: the one way text reaches a chart, on one line
/// and with its control characters replaced (which XML does not allow).
fn write_text(root: &Area<'_>, text: &str, at: (i32, i32), style: TextStyle<'_>) -> Drawn {
    root.draw(&Text::new(one_line(text), at, style))?;
    Ok(())
}

fn text_style(colour: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, FONT_SIZE)
        .into_font()
        .color(&colour)
        .pos(Pos::new(h, v))
}

fn text_px(text: &str) -> i32 {
    text.chars().count() as i32 * CHAR_PX
}

/// `text` cut to `chars` characters, with `…` when cut.
fn cut(text: &str, chars: i32) -> String {
    let chars = chars.max(2) as usize;
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    text.chars().take(chars - 1).chain(['…']).collect()
}

impl Key {
    fn new(label: &str, colour: RGBColor, mark: Mark) -> Self {
        Self {
            label: label.to_owned(),
            colour: format!("#{:02x}{:02x}{:02x}", colour.0, colour.1, colour.2),
            mark,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::html::tests::outage_run;

    /// The text of every `<text>` element of an SVG.
    fn texts(svg: &str) -> Vec<String> {
        let document = roxmltree::Document::parse(svg).unwrap();
        document
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
            .collect()
    }

    #[test]
    fn the_time_axis_reaches_the_last_thing_recorded() {
        let mut report = outage_run();
        assert_eq!(
            TimeAxis::of(&report, &report.timeline).end_secs,
            20.0,
            "the last bucket's end"
        );
        let coarse = Timeline {
            bucket_us: 2_000_000,
            buckets: vec![Bucket {
                at_us: 20_000_000,
                ..Bucket::default()
            }],
        };
        assert_eq!(
            TimeAxis::of(&report, &coarse).end_secs,
            22.0,
            "the end of the last point as drawn"
        );
        report.faults[1].to_us = 25_000_000;
        assert_eq!(
            TimeAxis::of(&report, &report.timeline).end_secs,
            25.0,
            "a fault past the load"
        );
        let empty = crate::report::tests::sample();
        assert_eq!(
            TimeAxis::of(&empty, &empty.timeline).end_secs,
            1.0,
            "never an empty axis"
        );
    }

    #[test]
    fn charts_draw_svg_text_and_name_each_fault() {
        let report = outage_run();
        let axis = TimeAxis::of(&report, &report.timeline);
        let traffic = traffic(&report, &report.timeline, axis).unwrap();
        assert!(traffic.svg.starts_with("<svg"), "{}", &traffic.svg[..80]);
        let words = texts(&traffic.svg);
        for text in [
            "files-down",
            "search-errors",
            "seconds from scenario start",
            "calls / s",
        ] {
            assert!(words.iter().any(|w| w == text), "{text}: {words:?}");
        }
        let labels: Vec<&str> = traffic.legend.iter().map(|k| k.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "calls sent / s",
                "failed / s, by when answered: -32011 transport",
                "failed / s, by when answered: -32014 refused",
                "failed / s, by when answered: -32603"
            ]
        );
        let mut theirs = report.clone();
        theirs.mode = crate::run::ProxyMode::Target("http://127.0.0.1:1/mcp".into()).describe();
        let legend = super::traffic(&theirs, &report.timeline, axis)
            .unwrap()
            .legend;
        assert_eq!(
            legend[1].label, "failed / s, by when answered: -32011",
            "another gateway's codes are not ours to name"
        );
        let strip = backends(&report, axis).unwrap().unwrap();
        let words = texts(&strip.svg);
        for text in ["1 of 2 ejected", "breaker open", "files", "search"] {
            assert!(words.iter().any(|w| w == text), "{text}: {words:?}");
        }
        assert_eq!(
            traffic.caption,
            "Each point: 100ms. Calls sent are counted when they were sent, failed calls when they were answered."
        );
        let latency = latency(&report, &report.timeline, axis).unwrap().unwrap();
        let labels: Vec<&str> = latency.legend.iter().map(|k| k.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "p50 of all calls",
                "p99 of all calls",
                "p50 of failed calls"
            ]
        );
        let fakes = fakes(&report, &report.timeline, axis).unwrap().unwrap();
        assert_eq!(fakes.legend.len(), 6);
    }

    #[test]
    fn charts_without_data_are_left_out() {
        let report = crate::report::tests::sample();
        let axis = TimeAxis::of(&report, &report.timeline);
        assert_eq!(latency(&report, &report.timeline, axis).unwrap(), None);
        assert_eq!(fakes(&report, &report.timeline, axis).unwrap(), None);
        assert_eq!(backends(&report, axis).unwrap(), None);
    }

    /// How a series of `colour` is drawn in an SVG: how many lines
    /// (`<polyline>`s as wide as a series) through at least two points, and
    /// how many dots.
    fn lines_and_dots(svg: &str, colour: RGBColor) -> (usize, usize) {
        let document = roxmltree::Document::parse(svg).unwrap();
        let hex = Key::new("", colour, Mark::Line).colour;
        let of_colour = |n: &roxmltree::Node<'_, '_>, attribute: &str| {
            n.attribute(attribute)
                .is_some_and(|c| c.eq_ignore_ascii_case(&hex))
        };
        let lines = document
            .descendants()
            .filter(|n| n.tag_name().name() == "polyline" && of_colour(n, "stroke"))
            .filter(|n| n.attribute("stroke-width") == Some("2"))
            .filter(|n| {
                n.attribute("points")
                    .unwrap_or("")
                    .split_whitespace()
                    .count()
                    >= 2
            })
            .count();
        let dots = document
            .descendants()
            .filter(|n| n.tag_name().name() == "circle" && of_colour(n, "fill"))
            .count();
        (lines, dots)
    }

    #[test]
    fn a_sparse_run_still_draws_its_latency() {
        // One call every 300 ms: at 100 ms no two neighbours have a latency.
        let mut report = outage_run();
        for (n, bucket) in report.timeline.buckets.iter_mut().enumerate() {
            let one = n % 3 == 0;
            bucket.started = u64::from(one);
            bucket.answered = u64::from(one);
            bucket.succeeded = u64::from(one);
            bucket.errors.clear();
            bucket.failed_p50_us = None;
            if !one {
                (bucket.p50_us, bucket.p99_us) = (None, None);
            }
        }
        let axis = TimeAxis::of(&report, &report.timeline);
        let drawn = |timeline: &Timeline| {
            let svg = latency(&report, timeline, axis).unwrap().unwrap().svg;
            lines_and_dots(&svg, PALETTE[0])
        };
        assert_eq!(drawn(&report.timeline).0, 0, "as it was: no line at all");
        assert!(drawn(&report.timeline).1 > 60, "but a dot for each point");
        let coarse = crate::report::resolution::for_charts(&report);
        let chart = latency(&report, &coarse, axis).unwrap().unwrap();
        assert_eq!(lines_and_dots(&chart.svg, PALETTE[0]), (1, 0), "p50, whole");
        assert!(
            chart.caption.starts_with("Each point: 1s,"),
            "{}",
            chart.caption
        );
    }

    #[test]
    fn a_single_bucket_still_shows() {
        let mut report = outage_run();
        report.timeline.buckets.truncate(1);
        let axis = TimeAxis::of(&report, &report.timeline);
        let traffic = traffic(&report, &report.timeline, axis).unwrap();
        assert_eq!(
            lines_and_dots(&traffic.svg, INK),
            (0, 1),
            "calls sent, as a dot"
        );
    }

    #[test]
    fn the_strip_shows_endpoints_down_apart_from_ejected_and_samples_centred() {
        let mut report = outage_run();
        for sample in &mut report.backends {
            if (7_000_000..13_250_000).contains(&sample.at_us) {
                sample.backends[0].endpoints[1].state = "unavailable".into();
            }
        }
        let axis = TimeAxis::of(&report, &report.timeline);
        let strip = backends(&report, axis).unwrap().unwrap();
        let words = texts(&strip.svg);
        for text in ["1 of 2 down", "1 of 2 ejected", "breaker open"] {
            assert!(words.iter().any(|w| w == text), "{text}: {words:?}");
        }
        assert_eq!(
            strip.caption,
            "Sampled every 500ms; each sample is drawn from halfway since the one before to halfway to the one after."
        );
        let samples: Vec<&BackendSample> = report.backends.iter().take(3).collect();
        assert_eq!(
            centred_spans(&samples, 500_000),
            [(0, 250_000), (250_000, 750_000), (750_000, 1_250_000)]
        );
    }

    #[test]
    fn an_error_label_has_one_colour_whatever_else_is_on_the_page() {
        let mut report = outage_run();
        let axis = TimeAxis::of(&report, &report.timeline);
        let colour_of = |report: &RunReport, label: &str| {
            let legend = traffic(report, &report.timeline, axis).unwrap().legend;
            legend
                .into_iter()
                .find(|k| k.label.contains(label))
                .map(|k| k.colour)
        };
        let before = colour_of(&report, "-32603");
        for bucket in &mut report.timeline.buckets {
            bucket.errors.remove("-32011");
            bucket.errors.insert("-32000".into(), 1);
        }
        assert_eq!(colour_of(&report, "-32603"), before);
        let colours: BTreeSet<String> = USUAL_ERRORS
            .iter()
            .map(|label| Key::new("", error_colour(label), Mark::Area).colour)
            .collect();
        assert_eq!(colours.len(), USUAL_ERRORS.len(), "the usual labels apart");
    }

    /// Each `<text>` of an SVG with its box, roughly: left, top, right,
    /// bottom in pixels.
    fn text_boxes(svg: &str) -> Vec<(String, [i32; 4])> {
        let document = roxmltree::Document::parse(svg).unwrap();
        document
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .map(|n| {
                let text = n.text().unwrap_or_default().trim().to_owned();
                let number = |a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap() as i32;
                let (x, y, width) = (number("x"), number("y"), text_px(&text));
                let left = match n.attribute("text-anchor") {
                    Some("middle") => x - width / 2,
                    Some("end") => x - width,
                    _ => x,
                };
                let top = match n.attribute("dy") {
                    Some("0.76em") => y,
                    Some("0.5ex") => y - 7,
                    _ => y - 13,
                };
                (text, [left, top, left + width, top + 13])
            })
            .collect()
    }

    #[test]
    fn band_names_keep_clear_of_fault_names() {
        let mut report = outage_run();
        // Every call fails as the search errors start: the band reaches
        // the calls' line, near the top.
        for bucket in &mut report.timeline.buckets[120..125] {
            bucket.errors = BTreeMap::from([("-32603".to_owned(), 20)]);
        }
        let axis = TimeAxis::of(&report, &report.timeline);
        let svg = traffic(&report, &report.timeline, axis).unwrap().svg;
        let boxes = text_boxes(&svg);
        let find = |name: &str| {
            boxes
                .iter()
                .find(|(text, _)| text == name)
                .unwrap_or_else(|| panic!("{name} not drawn: {boxes:?}"))
                .1
        };
        let overlap =
            |a: [i32; 4], b: [i32; 4]| a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
        for fault in ["files-down", "search-errors"] {
            for band in ["-32603", "-32014", "-32011"] {
                let (f, b) = (find(fault), find(band));
                assert!(!overlap(f, b), "{fault} {f:?} and {band} {b:?}");
            }
        }
    }

    #[test]
    fn equal_neighbours_merge_into_one_stretch_and_gaps_split_them() {
        let spans = [
            (0, 1, Some("open")),
            (1, 2, Some("open")),
            (2, 3, None),
            (3, 4, Some("open")),
            (4, 5, Some("half")),
        ];
        assert_eq!(
            stretches(spans.into_iter()),
            [(0, 2, "open"), (3, 4, "open"), (4, 5, "half")]
        );
    }

    #[test]
    fn a_band_is_named_in_its_longest_thick_stretch() {
        assert_eq!(
            thickest_run(&[0.0, 5.0, 0.0, 4.5, 5.0, 4.1, 1.0]),
            Some(3..6)
        );
        assert_eq!(thickest_run(&[0.0, 0.0]), None);
        assert_eq!(thickest_run(&[2.0]), Some(0..1));
    }

    #[test]
    fn axis_numbers_and_names_stay_short() {
        assert_eq!(plain_number(&2.0), "2");
        assert_eq!(plain_number(&0.30000000000000004), "0.3");
        assert_eq!(cut("files", 12), "files");
        assert_eq!(cut("a-very-long-backend-name", 8), "a-very-…");
    }
}
