//! Writing query results in the formats of `tracelake sql --format` (the writers live in
//! `tracelake_query::output`, shared with the HTTP query API).

use std::io::Write;

use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use tracelake_query::output::{ResultFormat, ResultWriter};

use crate::cli::OutputFormat;
use crate::error::Result;

impl From<OutputFormat> for ResultFormat {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Table => ResultFormat::Table,
            OutputFormat::Csv => ResultFormat::Csv,
            OutputFormat::Json => ResultFormat::Json,
            OutputFormat::Ndjson => ResultFormat::Ndjson,
            OutputFormat::Parquet => ResultFormat::Parquet,
            OutputFormat::Arrow => ResultFormat::Arrow,
        }
    }
}

/// Streams `stream` to `out` in `format`. Returns the number of rows written.
pub async fn write_results<W: Write + Send>(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    out: W,
) -> Result<usize> {
    let mut writer = ResultWriter::new(format.into(), stream.schema(), out)?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?)?;
    }
    Ok(writer.finish()?)
}
