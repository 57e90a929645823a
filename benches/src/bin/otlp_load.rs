//! `otlp-load`: an OTLP/gRPC load generator for `tracelake serve` (results in BENCHMARKS.md,
//! driven by `benches/ingest.py`).
//!
//! 1. Before any timing, generates `--spans` realistic spans with `tracelake-gen` (seeded, so
//!    every run sends the same bytes), regroups them into requests of exactly `--batch` spans
//!    (keeping the resource / scope grouping, like the Collector's batch processor), and
//!    protobuf-encodes each request once.
//! 2. Sends them as `opentelemetry.proto.collector.trace.v1.TraceService/Export` calls with
//!    `--concurrency` requests in flight over `ceil(concurrency / 8)` HTTP/2 connections,
//!    optionally gzip-compressed (compression happens per send, inside the timed phase).
//! 3. Reports spans/s and per-request latency (send → OK response) percentiles. A
//!    `RESOURCE_EXHAUSTED` answer (the server's backpressure) is counted, followed by a short
//!    sleep and a retry of the same request; any other error is counted and the request given
//!    up (the process then exits with status 1).
//!
//! The requests go through tonic's gRPC client exactly like `TraceServiceClient::export`
//! (same path, framing and compression), but with a codec that writes the pre-encoded bytes:
//! the generated client would re-encode (or need a clone of) the message on every send and
//! every retry, and the generator shares the machine's cores with the server it measures.
//!
//! ```sh
//! cargo build --release -p tracelake-benches --bin otlp-load
//! otlp-load --endpoint http://127.0.0.1:4317 --spans 1000000 --batch 500 --concurrency 32 --json
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tracelake_gen::{GenConfig, Generator};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// In-flight requests per HTTP/2 connection.
const IN_FLIGHT_PER_CONNECTION: usize = 8;
/// Attempts of one request before it is given up (only `RESOURCE_EXHAUSTED` is retried).
const MAX_ATTEMPTS: u32 = 10_000;

/// OTLP/gRPC load generator for `tracelake serve`.
#[derive(Debug, Parser)]
#[command(name = "otlp-load", version)]
struct Args {
    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Spans to send in total.
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Spans per request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight at once (one HTTP/2 connection per 8).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hours the generated span start times spread over. Live traffic arrives for "now", so
    /// the default is 1 (every flush writes one file per service); 24 is `tracelake gen`'s day.
    #[arg(long, default_value_t = 1)]
    hours: u32,
    /// Compress requests with gzip (per send, inside the timed phase).
    #[arg(long)]
    gzip: bool,
    /// Sleep before retrying a request answered with RESOURCE_EXHAUSTED, in milliseconds.
    #[arg(long, default_value_t = 50)]
    retry_ms: u64,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also print the results as one JSON line (last line of the output).
    #[arg(long)]
    json: bool,
}

/// One pre-encoded request.
struct Payload {
    bytes: Bytes,
    spans: usize,
}

/// Writes pre-encoded `ExportTraceServiceRequest` bytes; decodes the response with prost.
#[derive(Clone, Copy, Default)]
struct PreEncodedCodec;

impl Codec for PreEncodedCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PreEncodedCodec;
    type Decoder = PreEncodedCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for PreEncodedCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PreEncodedCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src).map(Some).map_err(|e| Status::internal(format!("bad response: {e}")))
    }
}

/// Regroups generated requests into requests of exactly `batch` spans (the last one may hold
/// fewer), keeping each span under its resource and scope.
struct Rebatcher {
    batch: usize,
    current: ExportTraceServiceRequest,
    spans: usize,
    done: Vec<Payload>,
}

impl Rebatcher {
    fn new(batch: usize) -> Self {
        Self { batch, current: ExportTraceServiceRequest::default(), spans: 0, done: Vec::new() }
    }

    fn push(&mut self, request: ExportTraceServiceRequest) {
        for mut rs in request.resource_spans {
            let scopes = std::mem::take(&mut rs.scope_spans);
            // Whether the last ResourceSpans of `current` is (a part of) `rs`.
            let mut open = false;
            for mut ss in scopes {
                let mut spans = std::mem::take(&mut ss.spans);
                while !spans.is_empty() {
                    let take = (self.batch - self.spans).min(spans.len());
                    let rest = spans.split_off(take);
                    let chunk = ScopeSpans { scope: ss.scope.clone(), spans, schema_url: ss.schema_url.clone() };
                    spans = rest;
                    if !open {
                        self.current.resource_spans.push(ResourceSpans {
                            resource: rs.resource.clone(),
                            scope_spans: Vec::new(),
                            schema_url: rs.schema_url.clone(),
                        });
                        open = true;
                    }
                    if let Some(last) = self.current.resource_spans.last_mut() {
                        last.scope_spans.push(chunk);
                    }
                    self.spans += take;
                    if self.spans == self.batch {
                        self.seal();
                        open = false;
                    }
                }
            }
        }
    }

    fn seal(&mut self) {
        if self.spans > 0 {
            let request = std::mem::take(&mut self.current);
            self.done.push(Payload { bytes: Bytes::from(request.encode_to_vec()), spans: self.spans });
            self.spans = 0;
        }
    }

    fn finish(mut self) -> Vec<Payload> {
        self.seal();
        self.done
    }
}

/// What one worker saw.
#[derive(Default)]
struct WorkerStats {
    /// Latency of every acknowledged request, microseconds.
    latencies_us: Vec<u64>,
    spans_ok: u64,
    spans_failed: u64,
    requests_failed: u64,
    spans_rejected: u64,
    retries: u64,
    /// Error answers (including retried ones) by gRPC code.
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

impl WorkerStats {
    fn merge(&mut self, other: WorkerStats) {
        self.latencies_us.extend(other.latencies_us);
        self.spans_ok += other.spans_ok;
        self.spans_failed += other.spans_failed;
        self.requests_failed += other.requests_failed;
        self.spans_rejected += other.spans_rejected;
        self.retries += other.retries;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn worker(
    mut client: tonic::client::Grpc<Channel>,
    payloads: Arc<Vec<Payload>>,
    next: Arc<AtomicUsize>,
    retry: Duration,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let path = PathAndQuery::from_static(EXPORT_PATH);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(payload) = payloads.get(i) else { break };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let started = Instant::now();
            let result = match client.ready().await {
                Ok(()) => client.unary(tonic::Request::new(payload.bytes.clone()), path.clone(), PreEncodedCodec).await,
                Err(e) => Err(Status::unavailable(format!("connection not ready: {e}"))),
            };
            match result {
                Ok(response) => {
                    stats.latencies_us.push(started.elapsed().as_micros() as u64);
                    let rejected = response.get_ref().partial_success.as_ref().map_or(0, |p| p.rejected_spans.max(0) as u64);
                    stats.spans_rejected += rejected;
                    stats.spans_ok += payload.spans as u64 - rejected.min(payload.spans as u64);
                    break;
                }
                Err(status) => {
                    *stats.errors.entry(code_name(status.code())).or_default() += 1;
                    if stats.first_error.is_none() {
                        stats.first_error = Some(format!("{}: {}", code_name(status.code()), status.message()));
                    }
                    if status.code() == tonic::Code::ResourceExhausted && attempts < MAX_ATTEMPTS {
                        stats.retries += 1;
                        tokio::time::sleep(retry).await;
                        continue;
                    }
                    stats.requests_failed += 1;
                    stats.spans_failed += payload.spans as u64;
                    break;
                }
            }
        }
    }
    stats
}

/// The canonical name of a gRPC code (`RESOURCE_EXHAUSTED`).
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux; `None`
/// elsewhere). Clock ticks are taken as 100 per second (USER_HZ on every Linux architecture
/// tracelake runs on).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.batch == 0 || args.concurrency == 0 || args.spans == 0 || args.threads == 0 {
        eprintln!("otlp-load: --spans, --batch, --concurrency and --threads must be greater than 0");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("otlp-load: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("otlp-load: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the load; `Ok(false)` if some request was given up.
async fn run(args: &Args) -> Result<bool, String> {
    // 1. Generate and encode everything before timing.
    let gen_started = Instant::now();
    let generator = Generator::new(GenConfig { seed: args.seed, spans: args.spans, hours: args.hours, ..GenConfig::default() })
        .map_err(|e| format!("generator: {e}"))?;
    let mut rebatcher = Rebatcher::new(args.batch);
    for request in generator {
        rebatcher.push(request);
    }
    let payloads = rebatcher.finish();
    let wire_bytes: usize = payloads.iter().map(|p| p.bytes.len()).sum();
    let total_spans: u64 = payloads.iter().map(|p| p.spans as u64).sum();
    eprintln!(
        "otlp-load: generated {} spans in {} requests ({:.1} MB protobuf, {:.0} B/span) in {:.2} s",
        total_spans,
        payloads.len(),
        wire_bytes as f64 / 1e6,
        wire_bytes as f64 / total_spans as f64,
        gen_started.elapsed().as_secs_f64()
    );

    // 2. Connect.
    let connections = args.concurrency.div_ceil(IN_FLIGHT_PER_CONNECTION);
    let endpoint = Endpoint::from_shared(args.endpoint.clone())
        .map_err(|e| format!("bad endpoint {}: {e}", args.endpoint))?
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(endpoint.connect().await.map_err(|e| format!("cannot connect to {}: {e}", args.endpoint))?);
    }

    // 3. Send.
    let payloads = Arc::new(payloads);
    let next = Arc::new(AtomicUsize::new(0));
    let retry = Duration::from_millis(args.retry_ms);
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let mut client = tonic::client::Grpc::new(channels[i / IN_FLIGHT_PER_CONNECTION].clone())
            .max_decoding_message_size(16 << 20);
        if args.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip);
        }
        tasks.push(tokio::spawn(worker(client, Arc::clone(&payloads), Arc::clone(&next), retry)));
    }
    let mut stats = WorkerStats::default();
    for task in tasks {
        stats.merge(task.await.map_err(|e| format!("worker failed: {e}"))?);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, process_cpu_secs()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    // 4. Report.
    stats.latencies_us.sort_unstable();
    let lat = &stats.latencies_us;
    let (p50, p95, p99) = (percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99));
    let max = lat.last().map_or(0.0, |v| *v as f64 / 1000.0);
    let mean = if lat.is_empty() { 0.0 } else { lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0 };
    let rate = stats.spans_ok as f64 / wall;
    let errors: Vec<String> = stats.errors.iter().map(|(code, n)| format!("{code}={n}")).collect();
    println!(
        "sent {} spans in {} requests of {} spans, {} in flight over {} connections{}",
        total_spans,
        payloads.len(),
        args.batch,
        args.concurrency,
        connections,
        if args.gzip { ", gzip" } else { "" }
    );
    println!("acknowledged {} spans in {:.3} s = {:.0} spans/s ({:.1} MB/s of protobuf)", stats.spans_ok, wall, rate, wire_bytes as f64 / wall / 1e6);
    println!("request latency ms: p50 {p50:.2}  p95 {p95:.2}  p99 {p99:.2}  max {max:.2}  mean {mean:.2}");
    println!(
        "errors: {}; retries {}; requests given up {} ({} spans); spans rejected in partial_success {}",
        if errors.is_empty() { "none".to_string() } else { errors.join(", ") },
        stats.retries,
        stats.requests_failed,
        stats.spans_failed,
        stats.spans_rejected
    );
    if let Some(e) = &stats.first_error {
        println!("first error: {e}");
    }
    if let Some(cpu) = cpu {
        println!("load generator CPU during the run: {cpu:.2} s ({:.0} % of one core)", cpu / wall * 100.0);
    }
    if args.json {
        let errors_json: Vec<String> = stats.errors.iter().map(|(code, n)| format!("\"{code}\":{n}")).collect();
        println!(
            "{{\"spans\":{},\"spans_ok\":{},\"spans_failed\":{},\"spans_rejected\":{},\"requests\":{},\"batch\":{},\"concurrency\":{},\
             \"connections\":{},\"gzip\":{},\"wire_bytes\":{},\"wall_s\":{:.6},\"spans_per_s\":{:.1},\"p50_ms\":{:.3},\"p95_ms\":{:.3},\
             \"p99_ms\":{:.3},\"max_ms\":{:.3},\"mean_ms\":{:.3},\"retries\":{},\"requests_failed\":{},\"errors\":{{{}}},\"client_cpu_s\":{}}}",
            total_spans,
            stats.spans_ok,
            stats.spans_failed,
            stats.spans_rejected,
            payloads.len(),
            args.batch,
            args.concurrency,
            connections,
            args.gzip,
            wire_bytes,
            wall,
            rate,
            p50,
            p95,
            p99,
            max,
            mean,
            stats.retries,
            stats.requests_failed,
            errors_json.join(","),
            cpu.map_or("null".to_string(), |c| format!("{c:.3}")),
        );
    }
    Ok(stats.requests_failed == 0)
}
