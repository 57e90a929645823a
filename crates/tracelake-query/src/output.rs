//! Query results as bytes: the formats of `tracelake sql --format` and of the HTTP query API,
//! written batch by batch so that large results stream.
//!
//! `csv` follows SPEC.md: a header row then the rows; timestamps RFC 3339 UTC with up to nine
//! fractional digits; booleans `true`/`false`; NULL as an empty field. Nested values (maps,
//! lists, structs) become JSON text in CSV. `json_rows` is the HTTP API's typed JSON:
//! `{"columns": [{"name", "type"}], "rows": [[...], ...]}`.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::{csv, ipc, json, util::pretty};
use datafusion::parquet::arrow::ArrowWriter;

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// Aligned text table (buffers the whole result).
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
    /// Newline-delimited JSON objects.
    Ndjson,
    /// `{"columns": [...], "rows": [[...]]}` with typed values.
    JsonRows,
    /// A Parquet file.
    Parquet,
    /// An Arrow IPC stream.
    Arrow,
}

/// Result-writing errors.
pub type OutputResult<T> = std::result::Result<T, ArrowError>;

enum Sink<W: Write + Send> {
    Table { out: W, batches: Vec<RecordBatch> },
    Csv { writer: csv::Writer<W>, csv_schema: SchemaRef, wrote: bool },
    Json(json::ArrayWriter<W>),
    Ndjson(json::LineDelimitedWriter<W>),
    JsonRows { out: W, first: bool },
    Parquet(Box<ArrowWriter<W>>),
    Arrow(ipc::writer::StreamWriter<W>),
}

/// Writes one result, batch by batch, in one format.
pub struct ResultWriter<W: Write + Send> {
    schema: SchemaRef,
    sink: Sink<W>,
    rows: usize,
}

impl<W: Write + Send> ResultWriter<W> {
    /// Starts a result of `schema` in `format` on `out`.
    pub fn new(format: ResultFormat, schema: SchemaRef, mut out: W) -> OutputResult<Self> {
        let sink = match format {
            ResultFormat::Table => Sink::Table { out, batches: Vec::new() },
            ResultFormat::Csv => {
                let writer = csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.fZ".to_owned())
                    .build(out);
                Sink::Csv { writer, csv_schema: csv_schema(&schema), wrote: false }
            }
            ResultFormat::Json => Sink::Json(json::ArrayWriter::new(out)),
            ResultFormat::Ndjson => Sink::Ndjson(json::LineDelimitedWriter::new(out)),
            ResultFormat::JsonRows => {
                let columns: Vec<serde_json::Value> = schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
                    .collect();
                write!(out, "{{\"columns\":{},\"rows\":[", serde_json::Value::Array(columns))?;
                Sink::JsonRows { out, first: true }
            }
            ResultFormat::Parquet => Sink::Parquet(Box::new(
                ArrowWriter::try_new(out, Arc::clone(&schema), None).map_err(|e| ArrowError::ExternalError(Box::new(e)))?,
            )),
            ResultFormat::Arrow => Sink::Arrow(ipc::writer::StreamWriter::try_new(out, &schema)?),
        };
        Ok(Self { schema, sink, rows: 0 })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> OutputResult<()> {
        self.rows += batch.num_rows();
        match &mut self.sink {
            Sink::Table { batches, .. } => batches.push(batch.clone()),
            Sink::Csv { writer, csv_schema, wrote } => {
                writer.write(&csv_batch(batch, csv_schema)?)?;
                *wrote = true;
            }
            Sink::Json(w) => w.write(batch)?,
            Sink::Ndjson(w) => w.write(batch)?,
            Sink::JsonRows { out, first } => write_json_rows(out, first, batch)?,
            Sink::Parquet(w) => w.write(batch).map_err(|e| ArrowError::ExternalError(Box::new(e)))?,
            Sink::Arrow(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ends the result (footers, closing brackets) and returns the writer.
    pub fn finish(self) -> OutputResult<usize> {
        let rows = self.rows;
        match self.sink {
            Sink::Table { mut out, batches } => {
                writeln!(out, "{}", pretty::pretty_format_batches_with_schema(self.schema, &batches)?)?;
                writeln!(out, "{rows} row(s)")?;
            }
            Sink::Csv { mut writer, csv_schema, wrote } => {
                if !wrote {
                    // Header only, so that scripts always see the columns.
                    writer.write(&RecordBatch::new_empty(csv_schema))?;
                }
            }
            Sink::Json(mut w) => w.finish()?,
            Sink::Ndjson(mut w) => w.finish()?,
            Sink::JsonRows { mut out, .. } => out.write_all(b"]}")?,
            Sink::Parquet(w) => {
                w.close().map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            }
            Sink::Arrow(mut w) => w.finish()?,
        }
        Ok(rows)
    }
}

/// Rows as JSON arrays in column order (values typed as arrow-json renders them; NULL as null).
fn write_json_rows<W: Write>(out: &mut W, first: &mut bool, batch: &RecordBatch) -> OutputResult<()> {
    // Rename columns to positions so that the object keys are unique and ordered.
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
        .collect();
    let renamed = RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())?;
    let mut writer = json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, json::writer::LineDelimited>(Vec::new());
    writer.write(&renamed)?;
    writer.finish()?;
    let lines = writer.into_inner();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        let values: Vec<serde_json::Value> =
            (0..batch.num_columns()).map(|i| row.get(&format!("c{i}")).cloned().unwrap_or_default()).collect();
        if !*first {
            out.write_all(b",")?;
        }
        *first = false;
        serde_json::to_writer(&mut *out, &values).map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
    }
    Ok(())
}

/// The type a column has in CSV output: nested values become JSON text, and every timestamp
/// becomes a UTC timestamp (printed with a `Z`); a timestamp without a time zone is taken as UTC.
fn csv_type(t: &DataType) -> DataType {
    match t {
        t if t.is_nested() => DataType::Utf8,
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("UTC".into())),
        other => other.clone(),
    }
}

fn csv_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|f| Field::new(f.name(), csv_type(f.data_type()), true)).collect();
    Arc::new(Schema::new(fields))
}

/// Converts a batch to the CSV schema: nested columns as JSON, timestamps in UTC.
fn csv_batch(batch: &RecordBatch, csv_schema: &SchemaRef) -> OutputResult<RecordBatch> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = csv_type(field.data_type());
        if field.data_type().is_nested() {
            columns.push(json_strings(field, column)?);
        } else if &target != field.data_type() {
            columns.push(datafusion::arrow::compute::cast(column, &target)?);
        } else {
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::clone(csv_schema), columns)
}

fn json_strings(field: &Field, column: &ArrayRef) -> OutputResult<ArrayRef> {
    let one = Arc::new(Schema::new(vec![Field::new("v", field.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(one, vec![Arc::clone(column)])?;
    let mut writer = json::WriterBuilder::new().with_explicit_nulls(true).build::<_, json::writer::JsonArray>(Vec::new());
    writer.write(&batch)?;
    writer.finish()?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&writer.into_inner()).map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 16);
    for (i, row) in rows.iter().enumerate() {
        match row.get("v") {
            Some(v) if !column.is_null(i) && !v.is_null() => out.append_value(v.to_string()),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod output_tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    #[test]
    fn json_rows_are_typed_arrays_in_column_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true), Field::new("s", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![Some(1), None])), Arc::new(StringArray::from(vec![Some("a"), Some("b")]))],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = ResultWriter::new(ResultFormat::JsonRows, schema, &mut out).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        assert_eq!(w.finish().unwrap(), 4);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["columns"], serde_json::json!([{"name": "n", "type": "Int64"}, {"name": "s", "type": "Utf8"}]));
        assert_eq!(v["rows"], serde_json::json!([[1, "a"], [null, "b"], [1, "a"], [null, "b"]]));
    }
}
