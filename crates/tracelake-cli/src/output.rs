//! Writing query results in the formats of `tracelake sql --format`.
//!
//! `csv` follows SPEC.md: a header row then the rows; timestamps RFC 3339 UTC with up to nine
//! fractional digits; booleans `true`/`false`; NULL as an empty field. Nested values (maps,
//! lists, structs) become JSON text in CSV.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::{csv, ipc, json, util::pretty};
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use datafusion::physical_plan::SendableRecordBatchStream;

use crate::cli::OutputFormat;
use crate::error::{CliError, Result};

/// Streams `stream` to `out` in `format`. Returns the number of rows written.
pub async fn write_results<W: Write + Send>(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    out: W,
) -> Result<usize> {
    let schema = stream.schema();
    let mut rows = 0;
    match format {
        OutputFormat::Table => {
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                batches.push(batch);
            }
            let mut out = out;
            writeln!(out, "{}", pretty::pretty_format_batches_with_schema(schema, &batches)?)?;
            writeln!(out, "{rows} row(s)")?;
        }
        OutputFormat::Csv => {
            let csv_schema = csv_schema(&schema);
            let mut writer = csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.fZ".to_owned())
                .build(out);
            let mut wrote_any = false;
            while let Some(batch) = stream.next().await {
                let batch = nested_as_json(&batch?, &csv_schema)?;
                rows += batch.num_rows();
                writer.write(&batch)?;
                wrote_any = true;
            }
            if !wrote_any {
                // Header only, so that scripts always see the columns.
                writer.write(&RecordBatch::new_empty(csv_schema))?;
            }
        }
        OutputFormat::Json | OutputFormat::Ndjson => {
            let mut buffer: Box<dyn JsonSink<W>> = if format == OutputFormat::Json {
                Box::new(json::ArrayWriter::new(out))
            } else {
                Box::new(json::LineDelimitedWriter::new(out))
            };
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                buffer.write_batch(&batch)?;
            }
            buffer.finish_json()?;
        }
        OutputFormat::Parquet => {
            let mut writer = ArrowWriter::try_new(out, schema, None)
                .map_err(|e| CliError::Output(e.to_string()))?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                writer.write(&batch).map_err(|e| CliError::Output(e.to_string()))?;
            }
            writer.close().map_err(|e| CliError::Output(e.to_string()))?;
        }
        OutputFormat::Arrow => {
            let mut writer = ipc::writer::StreamWriter::try_new(out, &schema)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(rows)
}

/// The two arrow JSON writers behind one object-safe interface.
trait JsonSink<W> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()>;
    fn finish_json(&mut self) -> Result<()>;
}

impl<W: Write, F: json::writer::JsonFormat> JsonSink<W> for json::Writer<W, F> {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(self.write(batch)?)
    }
    fn finish_json(&mut self) -> Result<()> {
        self.finish()?;
        Ok(())
    }
}

fn is_nested(t: &DataType) -> bool {
    t.is_nested()
}

/// The type a column has in CSV output: nested values become JSON text, and every timestamp
/// becomes a UTC timestamp (printed with a `Z`); a timestamp without a time zone is taken as UTC.
fn csv_type(t: &DataType) -> DataType {
    match t {
        t if is_nested(t) => DataType::Utf8,
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("UTC".into())),
        other => other.clone(),
    }
}

fn csv_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| Field::new(f.name(), csv_type(f.data_type()), true)).collect();
    Arc::new(Schema::new(fields))
}

/// Converts a batch to the CSV schema: nested columns as JSON, timestamps in UTC.
fn nested_as_json(batch: &RecordBatch, csv_schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = csv_type(field.data_type());
        if is_nested(field.data_type()) {
            columns.push(json_strings(field, column)?);
        } else if &target != field.data_type() {
            columns.push(datafusion::arrow::compute::cast(column, &target)?);
        } else {
            columns.push(Arc::clone(column));
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(csv_schema), columns)?)
}

fn json_strings(field: &Field, column: &ArrayRef) -> Result<ArrayRef> {
    let one = Arc::new(Schema::new(vec![Field::new("v", field.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(one, vec![Arc::clone(column)])?;
    let mut writer = json::WriterBuilder::new().with_explicit_nulls(true).build::<_, json::writer::JsonArray>(Vec::new());
    writer.write(&batch)?;
    writer.finish()?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&writer.into_inner()).map_err(|e| CliError::Output(e.to_string()))?;
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 16);
    for (i, row) in rows.iter().enumerate() {
        match row.get("v") {
            Some(v) if !column.is_null(i) && !v.is_null() => out.append_value(v.to_string()),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}
