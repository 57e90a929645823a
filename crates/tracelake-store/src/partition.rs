//! Splitting a batch of spans into one batch per partition (date, hour, service).

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampNanosecondType;
use tracelake_schema::schema::col;

use crate::error::{Error, Result};
use crate::layout::PartitionKey;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// Splits `batch` (of the `spans` schema) by partition, keeping row order within each part.
pub fn split_by_partition(batch: &RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let start = batch
        .column_by_name(col::START_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| Error::Schema("start_time must be Timestamp(ns)".into()))?;
    let service = batch
        .column_by_name(col::SERVICE_NAME)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| Error::Schema("service_name must be Utf8".into()))?;
    if start.null_count() > 0 || service.null_count() > 0 {
        return Err(Error::Schema("start_time and service_name must not be null".into()));
    }

    let mut groups: HashMap<(i64, &str), Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        let hour = start.value(row).div_euclid(NANOS_PER_HOUR);
        groups.entry((hour, service.value(row))).or_default().push(row as u32);
    }
    let single = groups.len() == 1;
    let mut parts = Vec::with_capacity(groups.len());
    for ((hour, svc), rows) in groups {
        let key = PartitionKey::for_span(hour * NANOS_PER_HOUR, svc);
        let part = if single { batch.clone() } else { take_record_batch(batch, &UInt32Array::from(rows))? };
        parts.push((key, part));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use arrow::array::{StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn splits_rows_by_hour_and_service() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("start_time", tracelake_schema::schema::timestamp_type(), false),
            Field::new("service_name", DataType::Utf8, false),
        ]));
        let h = NANOS_PER_HOUR;
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![5, h + 1, 7, h - 1, 2 * h]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["a", "a", "b", "a", "a"])),
            ],
        )
        .unwrap();
        let parts = split_by_partition(&batch).unwrap();
        let summary: Vec<_> = parts.iter().map(|(k, b)| (k.hour, k.service.as_str(), b.num_rows())).collect();
        assert_eq!(summary, vec![(0, "a", 2), (0, "b", 1), (1, "a", 1), (2, "a", 1)]);
    }
}
