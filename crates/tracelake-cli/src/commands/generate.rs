//! `tracelake gen`: a seeded synthetic workload, written into a store or as OTLP files.

use std::path::Path;

use prost::Message;
use tracelake_gen::{GenConfig, Generator, Regression};
use tracelake_schema::{SpanBatchBuilder, span_count};
use tracelake_store::{DataLocation, PartitionedBuffer, SpanFileWriter, WriteStats};

use crate::cli::{GenArgs, OtlpFileFormat};
use crate::commands::ingest::abort_run;
use crate::error::{CliError, Result};
use crate::progress;

/// Spans converted per Arrow batch while generating into a store.
const BATCH_SPANS: usize = 64 * 1024;

/// Runs `tracelake gen`.
pub async fn run(args: GenArgs) -> Result<()> {
    let config = config_from_args(&args)?;
    let started = std::time::Instant::now();
    let spans = config.spans;
    match (&args.data, &args.otlp_out) {
        (None, None) if args.endpoint.is_some() => {
            let endpoint = args.endpoint.clone().unwrap_or_default();
            let sent = send_to_endpoint(config, &endpoint).await?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!("sent {sent} spans to {endpoint} in {secs:.1} s ({:.0} spans/s)", sent as f64 / secs.max(1e-9));
        }
        (Some(data), None) => {
            let location = DataLocation::open(data)?;
            let stats = generate_into_store(config, &location, true).await?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "generated {} spans into {location} in {secs:.1} s ({:.0} spans/s): {} file(s), {} bytes ({:.1} bytes/span)",
                stats.rows,
                stats.rows as f64 / secs.max(1e-9),
                stats.files,
                stats.bytes,
                stats.bytes as f64 / (stats.rows.max(1)) as f64
            );
        }
        (None, Some(dir)) => {
            let files = generate_files(config, dir, args.otlp_format)?;
            eprintln!("generated {spans} spans as {files} OTLP file(s) in {}", dir.display());
        }
        _ => {
            return Err(CliError::Usage(
                "tracelake gen needs exactly one of --data DIR, --otlp-out DIR or --endpoint URL".into(),
            ));
        }
    }
    Ok(())
}

/// Builds the generator configuration from the flags.
pub fn config_from_args(args: &GenArgs) -> Result<GenConfig> {
    let start = chrono::DateTime::parse_from_rfc3339(&args.start)
        .map_err(|e| CliError::Usage(format!("--start '{}' is not RFC 3339 (e.g. 2026-11-01T00:00:00Z): {e}", args.start)))?;
    let start_unix_nanos = start
        .timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| CliError::Usage(format!("--start '{}' is outside 1970..2262", args.start)))?;
    let regressions = args
        .regressions
        .iter()
        .map(|r| r.parse::<Regression>().map_err(|e| CliError::Usage(format!("--regression '{r}': {e}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(GenConfig {
        seed: args.seed,
        spans: args.spans,
        services: args.services,
        operations: args.operations,
        max_depth: args.max_depth,
        max_fanout: args.max_fanout,
        error_rate: args.error_rate,
        start_unix_nanos,
        hours: args.hours,
        orphan_rate: args.orphan_rate,
        versions: args.versions.clone(),
        regressions,
        ..GenConfig::default()
    })
}

/// Generates the workload of `config` straight into `location`.
pub async fn generate_into_store(config: GenConfig, location: &DataLocation, show_progress: bool) -> Result<WriteStats> {
    let total = config.spans;
    let generator = Generator::new(config).map_err(|e| CliError::Gen(e.to_string()))?;
    let bar = show_progress.then(|| progress::bar(total, "spans"));
    let mut buffer = PartitionedBuffer::new(SpanFileWriter::new(location.clone()));
    let mut builder = SpanBatchBuilder::with_capacity(BATCH_SPANS);
    for request in generator {
        let rejected = builder.append_resource_spans(&request.resource_spans);
        if let Some(first) = rejected.first() {
            return Err(CliError::Gen(format!("generator produced an invalid span (a bug): {first}")));
        }
        if builder.len() >= BATCH_SPANS {
            let batch = builder.finish().map_err(|e| CliError::Gen(e.to_string()))?;
            if let Some(bar) = &bar {
                bar.inc(batch.num_rows() as u64);
            }
            if let Err(e) = buffer.push(&batch).await {
                return Err(abort_run(buffer, e).await);
            }
        }
    }
    let batch = builder.finish().map_err(|e| CliError::Gen(e.to_string()))?;
    if let Err(e) = buffer.push(&batch).await {
        return Err(abort_run(buffer, e).await);
    }
    if let Err(e) = buffer.flush_all().await {
        return Err(abort_run(buffer, e).await);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(buffer.stats())
}

/// Writes the workload as OTLP files (one request each); returns the number of files.
pub fn generate_files(config: GenConfig, dir: &Path, format: OtlpFileFormat) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let total = config.spans;
    let generator = Generator::new(config).map_err(|e| CliError::Gen(e.to_string()))?;
    let bar = progress::bar(total, "spans");
    let mut files = 0;
    for (i, request) in generator.enumerate() {
        let spans = span_count(&request.resource_spans);
        let (name, bytes) = match format {
            OtlpFileFormat::Protobuf => (format!("request-{i:06}.pb"), request.encode_to_vec()),
            OtlpFileFormat::Json => (
                format!("request-{i:06}.json"),
                serde_json::to_vec(&request).map_err(|e| CliError::Output(e.to_string()))?,
            ),
        };
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
        files += 1;
        bar.inc(spans as u64);
    }
    bar.finish_and_clear();
    Ok(files)
}

/// Posts the workload to an OTLP/HTTP receiver as protobuf, one request at a time, retrying
/// refusals that ask for it (429/503) and connection errors with backoff. Returns spans sent.
pub async fn send_to_endpoint(config: GenConfig, endpoint: &str) -> Result<u64> {
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let total = config.spans;
    let generator = Generator::new(config).map_err(|e| CliError::Gen(e.to_string()))?;
    let client = reqwest::Client::new();
    let bar = progress::bar(total, "spans");
    let mut sent = 0u64;
    for request in generator {
        let spans = span_count(&request.resource_spans);
        let body = request.encode_to_vec();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let response = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await;
            let retry = match response {
                Ok(r) if r.status().is_success() => {
                    let bytes = r.bytes().await.map_err(|e| CliError::Output(format!("{url}: {e}")))?;
                    let reply = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(bytes)
                        .map_err(|e| CliError::Output(format!("{url}: invalid OTLP response: {e}")))?;
                    if let Some(partial) = reply.partial_success.filter(|p| p.rejected_spans > 0) {
                        return Err(CliError::Output(format!(
                            "{url} refused {} span(s): {}",
                            partial.rejected_spans, partial.error_message
                        )));
                    }
                    break;
                }
                Ok(r) if matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => format!("HTTP {}", r.status()),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    return Err(CliError::Output(format!("{url} answered {status}: {text}")));
                }
                Err(e) => e.to_string(),
            };
            if attempt >= 10 {
                return Err(CliError::Output(format!("{url}: giving up after {attempt} attempts: {retry}")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100 * 2u64.pow(attempt.min(6)))).await;
        }
        sent += spans as u64;
        bar.inc(spans as u64);
    }
    bar.finish_and_clear();
    Ok(sent)
}
