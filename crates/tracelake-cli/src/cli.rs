//! Command-line definition (clap). Flag names follow SPEC.md; every flag has a default and help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tracelake: SQL over your OpenTelemetry traces.
#[derive(Debug, Parser)]
#[command(name = "tracelake", version, about, long_about = None)]
pub struct Cli {
    /// The verb to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a SQL query on a data location, with no server.
    Sql(SqlArgs),
    /// Load OTLP trace files (protobuf, JSON, or JSON lines; optionally gzipped).
    Ingest(IngestArgs),
    /// Generate a realistic synthetic workload (seeded, deterministic).
    Gen(GenArgs),
    /// Generate a workload, ingest it, and print an SLO report: the 1-minute tour.
    Demo(DemoArgs),
    /// Run the OTLP receivers (gRPC and HTTP) with a write-ahead log, flushing to Parquet.
    Serve(ServeArgs),
    /// Compare the latency of a candidate against a baseline; exit 0 pass, 1 regression,
    /// 2 inconclusive (too few samples), 3 usage or data error.
    Gate(Box<GateArgs>),
    /// Merge each partition's small span files into files of a target size.
    Compact(CompactArgs),
    /// Delete the hourly partitions older than a retention (`--dry-run` lists them).
    Retain(RetainArgs),
    /// Run an Apache DataFusion Ballista scheduler that knows tracelake's tables and functions.
    BallistaScheduler(BallistaSchedulerArgs),
    /// Run a Ballista executor with tracelake's functions.
    BallistaExecutor(BallistaExecutorArgs),
}

/// `tracelake compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Compact this tenant's data (<data>/tenants/<org id>) instead of the default tenant's.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Size a merged file aims for, in bytes [default: 67108864 = 64 MiB].
    #[arg(long, default_value_t = 64 << 20)]
    pub target_file_bytes: u64,
    /// Leave files younger than this many seconds alone (a running server may still be
    /// flushing next to them).
    #[arg(long, default_value_t = 300)]
    pub min_file_age_secs: u64,
    /// Seconds the replaced files stay after their merged file exists, for queries that listed
    /// them just before; `compact` waits this long, then deletes them.
    #[arg(long, default_value_t = 120)]
    pub grace_secs: u64,
    /// List the merges it would do, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `tracelake retain`.
#[derive(Debug, Args)]
pub struct RetainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Apply to this tenant's data (<data>/tenants/<org id>) instead of the default tenant's.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Keep this much history: `14d`, `36h`, `2w`, `90m`, `3600s`. Hourly partitions that
    /// ended before now minus this are deleted.
    #[arg(long)]
    pub older_than: String,
    /// Name the partitions that would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Unit of comparison of `tracelake gate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateUnit {
    /// Each selected span is one sample (its duration).
    Spans,
    /// Each trace whose root span is selected is one sample (first start to last end of all
    /// its spans; an error if any span failed).
    Traces,
}

/// `tracelake gate`. Every setting may also come from a gate file (`--gate-file`); flags win.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Data location of both sides: a directory or s3://bucket/prefix [default: ./tracelake-data].
    #[arg(long, env = "TRACELAKE_DATA")]
    pub data: Option<String>,
    /// SQL predicate over `spans` selecting the baseline, e.g.
    /// "resource_attributes['service.version'] = 'v1'".
    #[arg(long)]
    pub baseline: Option<String>,
    /// SQL predicate selecting the candidate.
    #[arg(long)]
    pub candidate: Option<String>,
    /// Compare only this service (`service_name`).
    #[arg(long)]
    pub service: Option<String>,
    /// Compare only this operation (`span_name`).
    #[arg(long)]
    pub operation: Option<String>,
    /// Gate every (service, operation) with enough samples, correcting for the many comparisons.
    #[arg(long)]
    pub per_operation: bool,
    /// Compare span durations or whole-trace durations (traces selected by their root span).
    #[arg(long, value_enum)]
    pub unit: Option<GateUnit>,
    /// Baseline window start (RFC 3339, inclusive), e.g. 2026-11-01T00:00:00Z.
    #[arg(long)]
    pub baseline_from: Option<String>,
    /// Baseline window end (RFC 3339, exclusive).
    #[arg(long)]
    pub baseline_to: Option<String>,
    /// Candidate window start (RFC 3339, inclusive).
    #[arg(long)]
    pub candidate_from: Option<String>,
    /// Candidate window end (RFC 3339, exclusive).
    #[arg(long)]
    pub candidate_to: Option<String>,
    /// Data location of the baseline only (overrides --data).
    #[arg(long)]
    pub baseline_data: Option<String>,
    /// Data location of the candidate only (overrides --data).
    #[arg(long)]
    pub candidate_data: Option<String>,
    /// Query a tracelake Flight SQL server instead of a data location, e.g. grpc://127.0.0.1:50051.
    #[arg(long)]
    pub flight: Option<String>,
    /// Flight SQL server of the baseline only.
    #[arg(long)]
    pub baseline_flight: Option<String>,
    /// Flight SQL server of the candidate only.
    #[arg(long)]
    pub candidate_flight: Option<String>,
    /// Bearer token for Flight SQL servers that require one.
    #[arg(long, env = "TRACELAKE_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tenant (X-Scope-OrgID) to query on Flight SQL servers with tenants.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Threshold rule, repeatable: "p99 +10%", "p99 +5ms", "error_rate +0.5pp",
    /// "throughput -10%". Replaces the gate file's rules [default: p50 +10%, p99 +10%,
    /// error_rate +0.5pp].
    #[arg(long = "threshold", value_name = "RULE")]
    pub thresholds: Vec<String>,
    /// TOML gate file (scope, selections, thresholds, statistics); see deploy/ci/gate.toml.
    #[arg(long)]
    pub gate_file: Option<PathBuf>,
    /// Confidence level of intervals; significance α = 1 − confidence [default: 0.95].
    #[arg(long)]
    pub confidence: Option<f64>,
    /// Bootstrap resamples per comparison [default: 2000].
    #[arg(long)]
    pub bootstrap_resamples: Option<usize>,
    /// Bootstrap seed; the same seed and data give the same report [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fewer samples than this on a side: inconclusive (per operation: skipped) [default: 100].
    #[arg(long)]
    pub min_samples: Option<usize>,
    /// A quantile q needs this many samples beyond it per side, n ≥ this/(1−q) [default: 10].
    #[arg(long)]
    pub min_tail_samples: Option<usize>,
    /// Multiple-comparison correction: holm, bh (Benjamini–Hochberg) or none [default: holm].
    #[arg(long)]
    pub correction: Option<String>,
    /// A change beyond its threshold that is not significant is inconclusive (exit 2), not a pass.
    #[arg(long)]
    pub strict: bool,
    /// Write the report as Markdown (for a PR comment) to this file; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the report as JSON to this file; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw both distributions' CDFs (log x) with the quantiles marked: a .png or .svg file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Size of the plot in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1000x600", value_parser = parse_size)]
    pub plot_size: (u32, u32),
    /// No terminal table (the exit code, --markdown and --json still report).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Parses `1000x600`.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{text}' is not a size like 1000x600");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if !(240..=8192).contains(&w) || !(180..=8192).contains(&h) {
        return Err(format!("plot size {w}x{h}: width must be 240..=8192 and height 180..=8192 pixels"));
    }
    Ok((w, h))
}

/// `tracelake serve`. Every setting can also come from a TOML file (`--config`) or a
/// `TRACELAKE_*` variable; flags win over variables, variables over the file. Defaults are
/// listed by `--print-config` and in docs/configuration.md.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the flags, with underscores).
    #[arg(long, env = "TRACELAKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Data location: a local directory or s3://bucket/prefix [default: ./tracelake-data].
    #[arg(long, env = "TRACELAKE_DATA")]
    pub data: Option<String>,
    /// OTLP/gRPC listen address (`TraceService/Export`) [default: 127.0.0.1:4317].
    #[arg(long, env = "TRACELAKE_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// OTLP/HTTP listen address (`POST /v1/traces`, `/metrics`, `/health`, `/ready`) [default: 127.0.0.1:4318].
    #[arg(long, env = "TRACELAKE_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<String>,
    /// Arrow Flight SQL listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "TRACELAKE_FLIGHT_ADDR")]
    pub flight_addr: Option<String>,
    /// HTTP query API listen address [default: 127.0.0.1:3200].
    #[arg(long, env = "TRACELAKE_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Tenants: `X-Scope-OrgID` (header, or gRPC metadata) selects whose spans a request
    /// writes or reads; data under <data>/tenants/<org id> [default: false].
    #[arg(long, env = "TRACELAKE_TENANTS")]
    pub tenants: Option<bool>,
    /// Bearer token the query ports require (Flight SQL, HTTP API) [default: none, no auth].
    #[arg(long, env = "TRACELAKE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Memory one query may use, in bytes [default: 1073741824 = 1 GiB].
    #[arg(long, env = "TRACELAKE_QUERY_MEMORY_LIMIT_BYTES")]
    pub query_memory_limit_bytes: Option<usize>,
    /// Seconds one query may run before it is cancelled [default: 60].
    #[arg(long, env = "TRACELAKE_QUERY_TIMEOUT_SECS")]
    pub query_timeout_secs: Option<u64>,
    /// Queries executing at once [default: 4].
    #[arg(long, env = "TRACELAKE_MAX_CONCURRENT_QUERIES")]
    pub max_concurrent_queries: Option<usize>,
    /// Queries waiting for a slot; more get "busy" [default: 64].
    #[arg(long, env = "TRACELAKE_MAX_QUEUED_QUERIES")]
    pub max_queued_queries: Option<usize>,
    /// Seconds between background maintenance rounds (retention, compaction); 0 turns them
    /// off [default: 300].
    #[arg(long, env = "TRACELAKE_MAINTENANCE_INTERVAL_SECS")]
    pub maintenance_interval_secs: Option<u64>,
    /// Size a compacted file aims for, in bytes [default: 67108864 = 64 MiB].
    #[arg(long, env = "TRACELAKE_COMPACTION_TARGET_FILE_BYTES")]
    pub compaction_target_file_bytes: Option<u64>,
    /// Files younger than this many seconds are not compacted yet [default: 300].
    #[arg(long, env = "TRACELAKE_COMPACTION_MIN_FILE_AGE_SECS")]
    pub compaction_min_file_age_secs: Option<u64>,
    /// Keep this much history (`14d`, `36h`, `2w`, …); older hourly partitions are deleted
    /// [default: keep everything]. Per tenant: `[tenant_retention]` in the config file.
    #[arg(long, env = "TRACELAKE_RETENTION")]
    pub retention: Option<String>,
    /// Write-ahead log directory, on a local disk [default: <data>/wal].
    #[arg(long, env = "TRACELAKE_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,
    /// Share one fsync between all requests waiting for it (false: one fsync per request) [default: true].
    #[arg(long, env = "TRACELAKE_WAL_GROUP_COMMIT")]
    pub wal_group_commit: Option<bool>,
    /// Flush buffered spans to Parquet at least this often, in seconds [default: 30].
    #[arg(long, env = "TRACELAKE_FLUSH_INTERVAL_SECS")]
    pub flush_interval_secs: Option<u64>,
    /// Flush as soon as buffered spans take this many bytes of memory [default: 134217728 = 128 MiB].
    #[arg(long, env = "TRACELAKE_FLUSH_BYTES")]
    pub flush_bytes: Option<usize>,
    /// Memory limit of buffered spans; above it requests get 429 / RESOURCE_EXHAUSTED [default: 536870912 = 512 MiB].
    #[arg(long, env = "TRACELAKE_MAX_BUFFERED_BYTES")]
    pub max_buffered_bytes: Option<usize>,
    /// Largest request body in bytes, also after decompression [default: 16777216 = 16 MiB].
    #[arg(long, env = "TRACELAKE_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Seconds a client has to send a request's headers, and then its body [default: 30].
    #[arg(long, env = "TRACELAKE_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Attributes kept per attribute list (resource, span, event, link); the rest are dropped [default: 256].
    #[arg(long, env = "TRACELAKE_MAX_ATTRIBUTES")]
    pub max_attributes: Option<usize>,
    /// Longest attribute value in bytes; longer ones are truncated [default: 65536].
    #[arg(long, env = "TRACELAKE_MAX_ATTRIBUTE_VALUE_BYTES")]
    pub max_attribute_value_bytes: Option<usize>,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data location: a local directory or s3://bucket/prefix.
    #[arg(long, env = "TRACELAKE_DATA", default_value = "./tracelake-data")]
    pub data: String,
}

/// Output formats of `tracelake sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row; RFC 3339 UTC timestamps; NULL as an empty field.
    Csv,
    /// A JSON array of row objects.
    Json,
    /// Newline-delimited JSON, one row object per line.
    Ndjson,
    /// A Parquet file, written to stdout.
    Parquet,
    /// An Arrow IPC stream, written to stdout.
    Arrow,
}

/// `tracelake sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Query parallelism (default: number of CPUs).
    #[arg(long, env = "TRACELAKE_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,
    /// Memory limit for the query, e.g. 2GiB (default: unlimited).
    #[arg(long, env = "TRACELAKE_MEMORY_LIMIT", value_parser = parse_bytes)]
    pub memory_limit: Option<usize>,
    /// Run the query on a Ballista cluster: its scheduler, e.g. df://127.0.0.1:50050. The
    /// scheduler and executors (`tracelake ballista-scheduler` / `ballista-executor`) must
    /// reach --data under the same path or URL.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub ballista: Option<String>,
    /// The SQL query; `-` reads it from stdin. May start with a `--` comment.
    #[arg(allow_hyphen_values = true)]
    pub query: String,
}

/// `tracelake ballista-scheduler`.
#[derive(Debug, Args)]
pub struct BallistaSchedulerArgs {
    /// Address to listen on (clients use df://this-address).
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,
}

/// `tracelake ballista-executor`.
#[derive(Debug, Args)]
pub struct BallistaExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// Host to bind and advertise to the scheduler and other executors.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Arrow Flight port (shuffle data).
    #[arg(long, default_value_t = 50051)]
    pub flight_port: u16,
    /// gRPC port (tasks).
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks run at once [default: number of CPUs].
    #[arg(long)]
    pub vcores: Option<usize>,
    /// Directory for shuffle files [default: a new temporary directory].
    #[arg(long)]
    pub work_dir: Option<std::path::PathBuf>,
}

/// `tracelake ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Keep the valid spans of a request that has invalid ones (OTLP partial success) and report
    /// the invalid ones, instead of refusing the whole file.
    #[arg(long)]
    pub partial: bool,
    /// Files to load: `.json`, `.jsonl`/`.ndjson`, `.pb`/`.bin`; `.gz` is decompressed.
    /// Other names are sniffed (JSON starts with `{`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `tracelake gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of spans to generate (exact).
    #[arg(long, default_value_t = 100_000)]
    pub spans: u64,
    /// Random seed: the same seed and flags give the same workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write straight into this data location (a directory or s3://…).
    #[arg(long, conflicts_with = "otlp_out")]
    pub data: Option<String>,
    /// Write OTLP files into this directory instead (one request per file).
    #[arg(long, conflicts_with = "endpoint")]
    pub otlp_out: Option<PathBuf>,
    /// Send the workload to a running OTLP/HTTP receiver instead, e.g. http://127.0.0.1:4318
    /// (`/v1/traces` is appended unless given).
    #[arg(long, conflicts_with = "data")]
    pub endpoint: Option<String>,
    /// Encoding of files written with --otlp-out.
    #[arg(long, value_enum, default_value_t = OtlpFileFormat::Protobuf)]
    pub otlp_format: OtlpFileFormat,
    /// Number of services.
    #[arg(long, default_value_t = 12)]
    pub services: usize,
    /// Number of distinct (service, operation) pairs.
    #[arg(long, default_value_t = 60)]
    pub operations: usize,
    /// Maximum call depth.
    #[arg(long, default_value_t = 6)]
    pub max_depth: usize,
    /// Maximum downstream calls per operation.
    #[arg(long, default_value_t = 4)]
    pub max_fanout: usize,
    /// Base probability that a span is an error.
    #[arg(long, default_value_t = 0.01)]
    pub error_rate: f64,
    /// Start of the time window (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    pub start: String,
    /// Length of the time window in hours.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Fraction of traces made partial (a span dropped, leaving orphans).
    #[arg(long, default_value_t = 0.002)]
    pub orphan_rate: f64,
    /// service.version values; each trace picks one per service.
    #[arg(long, value_delimiter = ',', default_value = "v1,v2")]
    pub versions: Vec<String>,
    /// Planted latency regression, `SERVICE[/OPERATION]@VERSION*FACTOR`, e.g. `checkout@v2*1.3`.
    /// Repeatable.
    #[arg(long = "regression")]
    pub regressions: Vec<String>,
}

/// File encodings for `gen --otlp-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpFileFormat {
    /// Binary protobuf `ExportTraceServiceRequest` (`.pb`).
    Protobuf,
    /// OTLP JSON (`.json`).
    Json,
}

/// `tracelake demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the demo data (replaced if it holds an earlier demo).
    #[arg(long, default_value = "./tracelake-demo")]
    pub data: String,
    /// Spans to generate.
    #[arg(long, default_value_t = 200_000)]
    pub spans: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Parses sizes like `512MiB`, `2GB`, `1048576`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("'{text}' is not a size like 512MiB or 2GB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit '{other}' in '{text}' (use B, KB, KiB, MB, MiB, GB, GiB)")),
    };
    Ok((number * factor) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").unwrap_err().contains("unknown size unit"));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
