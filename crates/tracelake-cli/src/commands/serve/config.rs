//! The configuration of `tracelake serve`: one struct, filled from (lowest to highest
//! precedence) built-in defaults, a TOML file (`--config FILE`), `TRACELAKE_*` environment
//! variables, and command-line flags. `tracelake serve --print-config` shows the result.
//!
//! Every key of the TOML file is a field of [`ServeConfig`] with the same name as the flag
//! (dashes become underscores); unknown keys are an error, so a typo never goes unnoticed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::ServeArgs;
use crate::error::{CliError, Result};

/// Everything `tracelake serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Data location: a local directory or `s3://bucket/prefix`.
    pub data: String,
    /// OTLP/gRPC listen address.
    pub otlp_grpc_addr: String,
    /// OTLP/HTTP listen address (also `/metrics`, `/health`, `/ready`).
    pub otlp_http_addr: String,
    /// Arrow Flight SQL listen address.
    pub flight_addr: String,
    /// HTTP query API listen address (`/api/v1/query`, `/api/traces/{id}`, `/metrics`, …).
    pub http_addr: String,
    /// Tenants: `X-Scope-OrgID` selects whose spans a request writes or reads.
    pub tenants: bool,
    /// Bearer token required by the query ports (Flight SQL, HTTP API); none: no auth.
    pub auth_token: Option<String>,
    /// Memory one query may use (bytes); beyond it, it spills or fails clearly.
    pub query_memory_limit_bytes: usize,
    /// Time one query may run (seconds); it is cancelled after that.
    pub query_timeout_secs: u64,
    /// Queries executing at once.
    pub max_concurrent_queries: usize,
    /// Queries waiting for a slot before the server answers busy.
    pub max_queued_queries: usize,
    /// Write-ahead log directory (local disk); default `<data>/wal` for a local data location.
    pub wal_dir: Option<PathBuf>,
    /// One `fsync` for all appends waiting at that moment (true) or one per request (false).
    pub wal_group_commit: bool,
    /// Flush buffered spans to Parquet at least this often, in seconds.
    pub flush_interval_secs: u64,
    /// Flush as soon as the buffer holds this many bytes (Arrow memory).
    pub flush_bytes: usize,
    /// Memory limit of the buffer; above it requests get 429 / RESOURCE_EXHAUSTED.
    pub max_buffered_bytes: usize,
    /// Largest request body, compressed and after decompression (413 / RESOURCE_EXHAUSTED).
    pub max_request_bytes: usize,
    /// Seconds allowed for a request's headers and for its body (408 after that).
    pub request_timeout_secs: u64,
    /// Attributes kept per attribute list; the rest are dropped (and counted).
    pub max_attributes: usize,
    /// Longest attribute value in bytes; longer ones are truncated (and counted).
    pub max_attribute_value_bytes: usize,
    /// Seconds between background maintenance rounds (retention, then compaction); 0: none.
    pub maintenance_interval_secs: u64,
    /// Size a compacted file aims for (bytes).
    pub compaction_target_file_bytes: u64,
    /// Files younger than this many seconds are not compacted yet.
    pub compaction_min_file_age_secs: u64,
    /// Keep this much history (`14d`, `36h`, `2w`, …); older hourly partitions are deleted.
    /// None: keep everything.
    pub retention: Option<String>,
    /// Per-tenant retention overriding `retention`, e.g. `[tenant_retention]` `acme = "7d"`.
    pub tenant_retention: std::collections::BTreeMap<String, String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            data: "./tracelake-data".into(),
            otlp_grpc_addr: "127.0.0.1:4317".into(),
            otlp_http_addr: "127.0.0.1:4318".into(),
            flight_addr: "127.0.0.1:50051".into(),
            http_addr: "127.0.0.1:3200".into(),
            auth_token: None,
            tenants: false,
            query_memory_limit_bytes: 1 << 30,
            query_timeout_secs: 60,
            max_concurrent_queries: 4,
            max_queued_queries: 64,
            wal_dir: None,
            wal_group_commit: true,
            flush_interval_secs: 30,
            flush_bytes: 128 << 20,
            max_buffered_bytes: 512 << 20,
            max_request_bytes: 16 << 20,
            request_timeout_secs: 30,
            max_attributes: tracelake_schema::AttributeLimits::DEFAULT_MAX_ATTRIBUTES,
            max_attribute_value_bytes: tracelake_schema::AttributeLimits::DEFAULT_MAX_VALUE_BYTES,
            maintenance_interval_secs: 300,
            compaction_target_file_bytes: tracelake_store::compaction::CompactionOptions::DEFAULT_TARGET_FILE_BYTES,
            compaction_min_file_age_secs: tracelake_store::compaction::CompactionOptions::DEFAULT_MIN_FILE_AGE.as_secs(),
            retention: None,
            tenant_retention: Default::default(),
        }
    }
}

impl ServeConfig {
    /// Parses a TOML document.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| CliError::Usage(format!("config file {}: {e}", origin.display())))
    }

    /// Defaults, then `args.config` (if given), then every flag or variable that was set.
    pub fn resolve(args: &ServeArgs) -> Result<Self> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("cannot read config file {}: {e}", path.display())))?;
                Self::from_toml(&text, path)?
            }
            None => Self::default(),
        };
        macro_rules! overlay {
            ($($field:ident),* $(,)?) => {
                $(if let Some(value) = &args.$field { config.$field = value.clone(); })*
            };
        }
        overlay!(
            data,
            otlp_grpc_addr,
            otlp_http_addr,
            flight_addr,
            http_addr,
            tenants,
            query_memory_limit_bytes,
            query_timeout_secs,
            max_concurrent_queries,
            max_queued_queries,
            wal_group_commit,
            flush_interval_secs,
            flush_bytes,
            max_buffered_bytes,
            max_request_bytes,
            request_timeout_secs,
            max_attributes,
            max_attribute_value_bytes,
            maintenance_interval_secs,
            compaction_target_file_bytes,
            compaction_min_file_age_secs,
        );
        if args.retention.is_some() {
            config.retention = args.retention.clone();
        }
        if args.auth_token.is_some() {
            config.auth_token = args.auth_token.clone();
        }
        if args.wal_dir.is_some() {
            config.wal_dir = args.wal_dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let positive = [
            ("flush_interval_secs", self.flush_interval_secs as usize),
            ("flush_bytes", self.flush_bytes),
            ("max_buffered_bytes", self.max_buffered_bytes),
            ("max_request_bytes", self.max_request_bytes),
            ("request_timeout_secs", self.request_timeout_secs as usize),
            ("max_attribute_value_bytes", self.max_attribute_value_bytes),
            ("query_memory_limit_bytes", self.query_memory_limit_bytes),
            ("query_timeout_secs", self.query_timeout_secs as usize),
            ("max_concurrent_queries", self.max_concurrent_queries),
            ("compaction_target_file_bytes", self.compaction_target_file_bytes as usize),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(CliError::Usage(format!("{name} must be greater than 0")));
        }
        Ok(())
    }

    /// The effective configuration as TOML (for `--print-config`).
    /// The token is masked.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.auth_token.is_some() {
            shown.auth_token = Some("********".into());
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["tracelake", "serve"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Serve(args) => args,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tracelake.toml");
        std::fs::write(&file, "data = \"/srv/traces\"\nflush_interval_secs = 5\nmax_attributes = 64\n").unwrap();
        let config = ServeConfig::resolve(&args(&["--config", file.to_str().unwrap(), "--flush-interval-secs", "7"])).unwrap();
        assert_eq!(config.data, "/srv/traces", "from the file");
        assert_eq!(config.flush_interval_secs, 7, "the flag wins");
        assert_eq!(config.max_attributes, 64);
        assert_eq!(config.max_request_bytes, 16 << 20, "default");
        // The printed configuration reads back to the same struct (no token set here).
        assert_eq!(ServeConfig::from_toml(&config.to_toml(), &file).unwrap(), config);
    }

    #[test]
    fn unknown_keys_and_zero_limits_are_errors() {
        let e = ServeConfig::from_toml("flush_intervall_secs = 5", Path::new("x.toml")).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("unknown field `flush_intervall_secs`"), "{e}");
        let e = ServeConfig::resolve(&args(&["--max-buffered-bytes", "0"])).unwrap_err().to_string();
        assert!(e.contains("max_buffered_bytes must be greater than 0"), "{e}");
    }
}
