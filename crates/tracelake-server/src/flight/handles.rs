//! Statement handles: the server keeps no per-statement state. A handle carries the SQL and,
//! once bound, the parameter values (one row of Arrow IPC), so any server instance can run it
//! and a restart loses nothing.
//!
//! Layout: `TLH1` · SQL length (u32 LE) · SQL (UTF-8) · optional Arrow IPC stream of the parameters.

use bytes::Bytes;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use crate::error::QueryError;

const MAGIC: &[u8; 4] = b"TLH1";

/// A decoded handle.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementHandle {
    /// The statement's SQL.
    pub sql: String,
    /// Bound parameters (`$1`, `$2`, … in order); empty if none were bound.
    pub params: Vec<ScalarValue>,
}

impl StatementHandle {
    /// A handle for `sql` without parameters.
    pub fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), params: Vec::new() }
    }

    /// Encodes the handle; `params` is the batch the client bound (first row used).
    pub fn encode(sql: &str, params: Option<&RecordBatch>) -> Result<Bytes, QueryError> {
        let mut out = Vec::with_capacity(sql.len() + 8);
        out.extend_from_slice(MAGIC);
        let len = u32::try_from(sql.len()).map_err(|_| QueryError::InvalidSql("statement too long".into()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(sql.as_bytes());
        if let Some(batch) = params {
            let mut writer = StreamWriter::try_new(&mut out, &batch.schema())
                .map_err(|e| QueryError::Internal(format!("encoding parameters: {e}")))?;
            writer.write(batch).map_err(|e| QueryError::Internal(format!("encoding parameters: {e}")))?;
            writer.finish().map_err(|e| QueryError::Internal(format!("encoding parameters: {e}")))?;
        }
        Ok(Bytes::from(out))
    }

    /// Decodes a handle from a client (which may have altered it: errors, never panics).
    pub fn decode(bytes: &[u8]) -> Result<Self, QueryError> {
        let bad = |why: &str| QueryError::InvalidSql(format!("invalid prepared statement handle: {why}"));
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("unknown format"))?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| bad("truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad("truncated"));
        }
        let (sql, ipc) = rest.split_at(len);
        let sql = std::str::from_utf8(sql).map_err(|_| bad("SQL is not UTF-8"))?.to_owned();
        let params = if ipc.is_empty() { Vec::new() } else { first_row(ipc).map_err(|e| bad(&e))? };
        Ok(Self { sql, params })
    }
}

fn first_row(ipc: &[u8]) -> Result<Vec<ScalarValue>, String> {
    let reader = StreamReader::try_new(ipc, None).map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        if batch.num_rows() > 0 {
            return batch.columns().iter().map(|c| ScalarValue::try_from_array(c, 0).map_err(|e| e.to_string())).collect();
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn round_trips_sql_and_parameters_and_refuses_garbage() {
        let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, true), Field::new("$2", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["checkout"])), Arc::new(Int64Array::from(vec![5]))],
        )
        .unwrap();
        let bytes = StatementHandle::encode("SELECT $1, $2", Some(&batch)).unwrap();
        let handle = StatementHandle::decode(&bytes).unwrap();
        assert_eq!(handle.sql, "SELECT $1, $2");
        assert_eq!(handle.params, vec![ScalarValue::Utf8(Some("checkout".into())), ScalarValue::Int64(Some(5))]);
        assert_eq!(StatementHandle::decode(&StatementHandle::encode("SELECT 1", None).unwrap()).unwrap(), StatementHandle::new("SELECT 1"));
        for garbage in [&b"xx"[..], b"TLH1\xff\xff\xff\xff", b"TLH1\x01\x00\x00\x00\xff", &bytes[..bytes.len() - 30]] {
            assert!(StatementHandle::decode(garbage).is_err(), "{garbage:?}");
        }
    }
}
