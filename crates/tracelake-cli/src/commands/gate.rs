//! `tracelake gate`: fetch the baseline's and the candidate's spans (embedded or over Flight
//! SQL), run `tracelake-gate`'s statistics, print the verdict, write Markdown / JSON / a plot,
//! and exit 0 pass, 1 regression, 2 inconclusive (3 for errors, see main.rs).

mod select;
mod source;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use tracelake_gate::config::SideSection;
use tracelake_gate::plot::{PlotInput, write_plot};
use tracelake_gate::report::{render_json, render_markdown, render_text};
use tracelake_gate::stats::Correction;
use tracelake_gate::{GateContext, GateFile, GateMode, GateSettings, Metric, Sample, ScopeKey, Threshold, run_gate};

use crate::cli::{GateArgs, GateUnit};
use crate::error::{CliError, Result};
use select::{Selection, SideSamples, combined_spans_sql, parse_time, selection_sql};
use source::SpanSource;

/// One side, fully resolved from flags and the gate file.
struct Side {
    name: &'static str,
    selection: Selection,
    data: Option<String>,
    flight: Option<String>,
}

/// Runs `tracelake gate`; returns the verdict's exit code.
pub async fn run(args: GateArgs) -> Result<u8> {
    let file = match &args.gate_file {
        Some(path) => GateFile::load(path).map_err(|e| CliError::Usage(e.to_string()))?,
        None => GateFile::default(),
    };
    let settings = settings(&args, &file)?;
    if let Some(path) = &args.plot {
        tracelake_gate::plot::check_format(path).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let unit = match (args.unit, file.unit.as_deref()) {
        (Some(u), _) => u,
        (None, None | Some("spans")) => GateUnit::Spans,
        (None, Some("traces")) => GateUnit::Traces,
        (None, Some(other)) => return Err(CliError::Usage(format!("gate file: unit {other:?} must be \"spans\" or \"traces\""))),
    };
    let per_operation = args.per_operation || file.per_operation.unwrap_or(false);
    let service = args.service.clone().or(file.service.clone());
    let operation = args.operation.clone().or(file.operation.clone());
    let baseline = side("baseline", &file.baseline, args.baseline.as_deref(), [&args.baseline_from, &args.baseline_to], &args.baseline_data, &args.baseline_flight)?;
    let candidate = side("candidate", &file.candidate, args.candidate.as_deref(), [&args.candidate_from, &args.candidate_to], &args.candidate_data, &args.candidate_flight)?;
    for s in [&baseline, &candidate] {
        if s.selection.predicate.is_none() && s.selection.from.is_none() && s.selection.to.is_none() && s.data.is_none() && s.flight.is_none() {
            return Err(CliError::Usage(format!(
                "nothing selects the {0}: give --{0} \"PREDICATE\" (e.g. \"resource_attributes['service.version'] = 'v2'\"), a --{0}-from/--{0}-to window, or a --{0}-data / --{0}-flight source",
                s.name
            )));
        }
    }

    let started = Instant::now();
    let scope = ScopeKey { service: service.clone(), operation: operation.clone() };
    let one_scan = unit == GateUnit::Spans && source_key(&baseline, &args) == source_key(&candidate, &args);
    let mut sides = Vec::new();
    if one_scan {
        let mut source = open_source(&baseline, &args).await?;
        let sql = combined_spans_sql(&baseline.selection, &candidate.selection, service.as_deref(), operation.as_deref());
        let batches = match source.query(&sql).await {
            Ok(batches) => batches,
            Err(e) => return Err(blame_side(&mut source, [&baseline, &candidate], unit, &service, &operation, e).await),
        };
        for (s, flag) in [(&baseline, "in_baseline"), (&candidate, "in_candidate")] {
            let samples = SideSamples::collect(&batches, per_operation, &scope, Some(flag))?;
            tracing::info!(side = s.name, rows = samples.rows, "selected");
            let window = samples.window_secs(&s.selection);
            sides.push((samples, window, format!("{} ({})", s.selection.describe(), source.describe())));
        }
    } else {
        for s in [&baseline, &candidate] {
            let mut source = open_source(s, &args).await?;
            let sql = selection_sql(unit, &s.selection, service.as_deref(), operation.as_deref());
            let batches = source.query(&sql).await.map_err(|e| selection_error(s.name, &source, e))?;
            let samples = SideSamples::collect(&batches, per_operation, &scope, None)?;
            tracing::info!(side = s.name, rows = samples.rows, "selected");
            let window = samples.window_secs(&s.selection);
            sides.push((samples, window, format!("{} ({})", s.selection.describe(), source.describe())));
        }
    }
    let fetched = started.elapsed();
    let [(mut b, b_window, b_text), (mut c, c_window, c_text)] = <[_; 2]>::try_from(sides).map_err(|_| CliError::Output("internal: two sides expected".into()))?;

    let keys: Vec<ScopeKey> = if per_operation {
        let mut k: Vec<ScopeKey> = b.scopes.keys().chain(c.scopes.keys()).cloned().collect();
        k.sort();
        k.dedup();
        k
    } else {
        vec![scope]
    };
    let scopes: Vec<(ScopeKey, Sample, Sample)> =
        keys.into_iter().map(|k| (k.clone(), b.take(&k, b_window), c.take(&k, c_window))).collect();
    let plot_samples = args.plot.as_ref().map(|_| scopes.iter().map(|(k, b, c)| (k.clone(), b.clone(), c.clone())).collect::<Vec<_>>());
    let mode = if per_operation { GateMode::PerOperation } else { GateMode::Single };
    let report = run_gate(scopes, &settings, mode);
    tracing::info!(fetch_ms = fetched.as_millis() as u64, total_ms = started.elapsed().as_millis() as u64, "gate done");

    let unit_name = match unit {
        GateUnit::Spans => "spans",
        GateUnit::Traces => "traces",
    };
    let context = GateContext { unit: unit_name.into(), baseline: b_text, candidate: c_text };
    // The plot first: if it cannot be written (a bad path), no report claims a verdict.
    if let (Some(path), Some(samples)) = (&args.plot, plot_samples) {
        let shown = report.worst().map(|w| w.scope.clone());
        let chosen = samples.iter().find(|(k, _, _)| Some(k) == shown.as_ref()).or(samples.first());
        match chosen {
            Some((key, base, cand)) if !(base.is_empty() && cand.is_empty()) => {
                let markers = plot_markers(&settings).into_iter().map(|(name, q)| {
                    let value = |s: &Sample| tracelake_gate::stats::quantile(s.durations(), q).unwrap_or(f64::NAN);
                    (name.to_string(), q, value(base), value(cand))
                });
                let input = PlotInput {
                    title: format!("{key} — {}", report.verdict.name()),
                    baseline: base.durations(),
                    candidate: cand.durations(),
                    baseline_label: "baseline".into(),
                    candidate_label: "candidate".into(),
                    markers: markers.collect(),
                    unit: unit_name,
                };
                write_plot(path, &input, args.plot_size).map_err(|e| CliError::Usage(e.to_string()))?;
            }
            _ => eprintln!("warning: --plot {}: nothing was selected on either side, no plot written", path.display()),
        }
    }
    let to_stdout = |p: &Option<std::path::PathBuf>| p.as_deref() == Some(Path::new("-"));
    let stdout_taken = to_stdout(&args.markdown) || to_stdout(&args.json);
    if !args.quiet {
        let text = render_text(&report, &context);
        if stdout_taken { eprint!("{text}") } else { write_output(Path::new("-"), &text)? }
    }
    if let Some(path) = &args.markdown {
        write_output(path, &render_markdown(&report, &context))?;
    }
    if let Some(path) = &args.json {
        write_output(path, &(render_json(&report, &context) + "\n"))?;
    }
    Ok(report.verdict.exit_code())
}

/// Quantiles marked on the plot: those the rules gate, or p50 and p99.
fn plot_markers(settings: &GateSettings) -> Vec<(&'static str, f64)> {
    let mut metrics: Vec<Metric> = settings.thresholds.iter().map(|t| t.metric).filter(|m| m.quantile().is_some()).collect();
    metrics.sort();
    metrics.dedup();
    if metrics.is_empty() {
        metrics = vec![Metric::P50, Metric::P99];
    }
    metrics.into_iter().filter_map(|m| m.quantile().map(|q| (m.name(), q))).collect()
}

/// Writes a report to a file, or to stdout for `-`. A closed stdout (`| head`) is not an
/// error here: the exit code still carries the verdict.
fn write_output(path: &Path, text: &str) -> Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        };
    }
    std::fs::write(path, text).map_err(|e| CliError::Usage(format!("writing {}: {e}", path.display())))
}

/// Settings from flags over the gate file over defaults, validated.
fn settings(args: &GateArgs, file: &GateFile) -> Result<GateSettings> {
    let usage = |e: String| CliError::Usage(e);
    let defaults = GateSettings::default();
    let thresholds = if !args.thresholds.is_empty() {
        args.thresholds.iter().map(|t| Threshold::parse(t)).collect::<Result<Vec<_>, _>>().map_err(|e| usage(e.to_string()))?
    } else {
        let from_file = file.thresholds().map_err(|e| usage(format!("gate file: {e}")))?;
        if from_file.is_empty() { defaults.thresholds.clone() } else { from_file }
    };
    let stats = &file.statistics;
    let correction = match args.correction.as_ref().or(stats.correction.as_ref()) {
        Some(c) => c.parse::<Correction>().map_err(usage)?,
        None => defaults.correction,
    };
    let settings = GateSettings {
        thresholds,
        confidence: args.confidence.or(stats.confidence).unwrap_or(defaults.confidence),
        bootstrap_resamples: args.bootstrap_resamples.or(stats.bootstrap_resamples).unwrap_or(defaults.bootstrap_resamples),
        seed: args.seed.or(stats.seed).unwrap_or(defaults.seed),
        min_samples: args.min_samples.or(stats.min_samples).unwrap_or(defaults.min_samples),
        min_tail_samples: args.min_tail_samples.or(stats.min_tail_samples).unwrap_or(defaults.min_tail_samples),
        correction,
        strict: args.strict || stats.strict.unwrap_or(false),
    };
    if !(settings.confidence > 0.5 && settings.confidence < 1.0) {
        return Err(usage(format!("confidence {} must be between 0.5 and 1 (e.g. 0.95)", settings.confidence)));
    }
    if !(100..=1_000_000).contains(&settings.bootstrap_resamples) {
        return Err(usage(format!("bootstrap resamples {} must be 100..=1000000", settings.bootstrap_resamples)));
    }
    if settings.min_samples < 2 {
        return Err(usage("min samples must be at least 2".into()));
    }
    Ok(settings)
}

/// One side from its flags, then the gate file's section, then the shared flags.
fn side(
    name: &'static str,
    section: &SideSection,
    predicate: Option<&str>,
    window: [&Option<String>; 2],
    data: &Option<String>,
    flight: &Option<String>,
) -> Result<Side> {
    let time = |flag: String, value: Option<&String>| value.map(|v| parse_time(&flag, v)).transpose();
    let from = time(format!("--{name}-from"), window[0].as_ref().or(section.from.as_ref()))?;
    let to = time(format!("--{name}-to"), window[1].as_ref().or(section.to.as_ref()))?;
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(CliError::Usage(format!("--{name}-to must be after --{name}-from")));
        }
    }
    let predicate = predicate.map(str::to_string).or(section.predicate.clone()).filter(|p| !p.trim().is_empty());
    Ok(Side {
        name,
        selection: Selection { predicate, from, to },
        data: data.clone().or(section.data.clone()),
        flight: flight.clone().or(section.flight.clone()),
    })
}

/// A selection query failed: say which side and where (a bad predicate is the usual cause).
fn selection_error(side: &str, source: &SpanSource, e: CliError) -> CliError {
    CliError::Usage(format!("{side} selection on {}: {e}", source.describe()))
}

/// The combined scan failed: run each side's own query with `LIMIT 0` to say whose
/// selection is wrong (only on this error path).
async fn blame_side(
    source: &mut SpanSource,
    sides: [&Side; 2],
    unit: GateUnit,
    service: &Option<String>,
    operation: &Option<String>,
    error: CliError,
) -> CliError {
    for side in sides {
        let sql = format!("{} LIMIT 0", selection_sql(unit, &side.selection, service.as_deref(), operation.as_deref()));
        if let Err(e) = source.query(&sql).await {
            return selection_error(side.name, source, e);
        }
    }
    selection_error("baseline/candidate", source, error)
}

/// Which source a side reads, most specific first: its own Flight URL, its own data
/// location, the shared `--flight`, the shared `--data`. Equal keys share one scan.
fn source_key(side: &Side, args: &GateArgs) -> (Option<String>, Option<String>) {
    match (&side.flight, &side.data, &args.flight) {
        (Some(url), _, _) => (Some(url.clone()), None),
        (None, Some(data), _) => (None, Some(data.clone())),
        (None, None, Some(url)) => (Some(url.clone()), None),
        (None, None, None) => (None, Some(args.data.clone().unwrap_or_else(|| "./tracelake-data".into()))),
    }
}

async fn open_source(side: &Side, args: &GateArgs) -> Result<SpanSource> {
    match source_key(side, args) {
        (Some(url), _) => SpanSource::flight(&url, args.token.as_deref(), args.tenant.as_deref()).await,
        (None, data) => SpanSource::embedded(data.as_deref().unwrap_or("./tracelake-data")).await,
    }
}
