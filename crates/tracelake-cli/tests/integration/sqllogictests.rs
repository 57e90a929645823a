//! Runs every `sql/*.slt` file against a fresh store loaded with `sql/fixtures/`.
//!
//! Output normalisation (so expected results are stable): the store's path becomes `<data>`
//! and file names (ULIDs) become `<file>`.

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tracelake_query::{QueryPolicy, SessionBuilder, SessionOptions};

use super::common::{fixture_store_with, repo_files};

struct Tracelake {
    ctx: SessionContext,
    data_dir: String,
    ulid: regex::Regex,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

#[async_trait]
impl AsyncDB for Tracelake {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let df = QueryPolicy::ReadOnlyWithSettings.plan(&self.ctx, sql).await.map_err(|e| SltError(e.to_string()))?;
        let schema = df.schema().inner().clone();
        let batches = df.collect().await.map_err(|e| SltError(e.to_string()))?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema.fields().iter().map(|f| column_type(f.data_type())).collect();
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(self.format_rows(batch)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tracelake"
    }
}

impl Tracelake {
    fn format_rows(&self, batch: &RecordBatch) -> Result<Vec<Vec<String>>, SltError> {
        let options = FormatOptions::default().with_null("NULL");
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let cells = formatters
                .iter()
                .map(|f| {
                    let text = f.value(row).to_string();
                    // Plans print object paths without the leading slash.
                    let text = text.replace(&self.data_dir, "<data>").replace(self.data_dir.trim_start_matches('/'), "<data>");
                    let text = self.ulid.replace_all(&text, "<file>.parquet").into_owned();
                    if text.is_empty() { "(empty)".to_owned() } else { text }
                })
                .collect();
            rows.push(cells);
        }
        Ok(rows)
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16
        | DataType::UInt32 | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let files = repo_files("sql", "slt");
    assert!(!files.is_empty(), "no .slt files under sql/");
    let mut failures = Vec::new();
    for file in &files {
        let stem = file.file_stem().and_then(|s| s.to_str());
        let (dir, location) = fixture_store_with(stem).await;
        let data_dir = dir.path().canonicalize().expect("canonical").display().to_string();
        // Fixed parallelism keeps EXPLAIN output stable across machines.
        let options = SessionOptions { target_partitions: Some(4), ..Default::default() };
        let ctx = SessionBuilder::new(location).with_options(options).build().await.expect("session");
        let db = Tracelake { ctx, data_dir, ulid: regex::Regex::new(r"[0-9A-Z]{26}\.parquet").expect("regex") };
        let mut db = Some(db);
        let mut runner = sqllogictest::Runner::new(move || {
            let db = db.take();
            async move { db.ok_or_else(|| SltError("one connection per file".into())) }
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{} slt file(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}
