//! Retention: whole `date=…/hour=…` partitions dropped once every span in them is older than a
//! cutoff.
//!
//! A partition `date=D/hour=H` holds spans that started in `[D H:00, D H:00 + 1 h)`. It is
//! expired when that hour ends at or before the cutoff, so no span newer than the cutoff is
//! ever deleted; a partition straddling the cutoff stays until its hour is entirely past.
//! The files are deleted one by one, so a crash leaves a partial hour that the next run
//! finishes.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};

use crate::error::{Error, Result};
use crate::location::DataLocation;

/// One `date=…/hour=…` partition (all services) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourPartition {
    /// The UTC date.
    pub date: NaiveDate,
    /// The UTC hour (0–23).
    pub hour: u32,
    /// Objects under it (span files of every service).
    pub files: Vec<Path>,
    /// Their total size.
    pub bytes: u64,
}

impl HourPartition {
    /// `date=YYYY-MM-DD/hour=HH`.
    pub fn name(&self) -> String {
        format!("date={}/hour={:02}", self.date.format("%Y-%m-%d"), self.hour)
    }

    /// The end of the partition's hour.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        let start = self.date.and_hms_opt(self.hour, 0, 0)?.and_utc();
        Some(start + ChronoDuration::hours(1))
    }
}

/// Parses `date=YYYY-MM-DD` and `hour=HH` path segments.
fn date_hour(date: &str, hour: &str) -> Option<(NaiveDate, u32)> {
    let date = NaiveDate::parse_from_str(date.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
    let hour: u32 = hour.strip_prefix("hour=")?.parse().ok()?;
    (hour < 24).then_some((date, hour))
}

/// The partitions of `location` whose hour ended at or before `cutoff`, oldest first.
/// Objects that are not in a `date=…/hour=…` directory are never touched.
pub async fn expired(location: &DataLocation, cutoff: DateTime<Utc>) -> Result<Vec<HourPartition>> {
    let spans = location.spans_path();
    let objects: Vec<ObjectMeta> = match location.store().list(Some(&spans)).try_collect().await {
        Ok(objects) => objects,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(source) => return Err(Error::ObjectStore { path: spans.to_string(), source }),
    };
    let mut partitions: BTreeMap<(NaiveDate, u32), HourPartition> = BTreeMap::new();
    for object in objects {
        let Some(rest) = object.location.prefix_match(&spans) else { continue };
        let rest: Vec<String> = rest.map(|p| p.as_ref().to_owned()).collect();
        let Some((date, hour)) = rest.get(0..2).and_then(|dh| date_hour(&dh[0], &dh[1])) else { continue };
        let partition = partitions
            .entry((date, hour))
            .or_insert_with(|| HourPartition { date, hour, files: Vec::new(), bytes: 0 });
        partition.files.push(object.location);
        partition.bytes += object.size;
    }
    Ok(partitions.into_values().filter(|p| p.end().is_some_and(|end| end <= cutoff)).collect())
}

/// Deletes the files of `partition`; returns how many were deleted (files already gone are
/// not counted).
pub async fn drop_partition(location: &DataLocation, partition: &HourPartition) -> Result<usize> {
    let store = location.store();
    let mut deleted = 0;
    for file in &partition.files {
        match store.delete(file).await {
            Ok(()) => deleted += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(Error::ObjectStore { path: file.to_string(), source }),
        }
    }
    Ok(deleted)
}

/// Parses a retention like `14d`, `36h`, `90m`, `2w` or `3600s`.
pub fn parse_retention(text: &str) -> std::result::Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("'{text}' is not a retention like 14d, 36h, 90m, 2w or 3600s"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("'{text}': the unit must be s, m, h, d or w (e.g. 14d)")),
    };
    if n == 0 {
        return Err(format!("'{text}': a retention must be longer than zero"));
    }
    n.checked_mul(seconds).map(std::time::Duration::from_secs).ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::PartitionKey;

    #[test]
    fn retentions_parse() {
        assert_eq!(parse_retention("14d").unwrap().as_secs(), 14 * 86_400);
        assert_eq!(parse_retention("36h").unwrap().as_secs(), 36 * 3600);
        assert_eq!(parse_retention("2w").unwrap().as_secs(), 14 * 86_400);
        for bad in ["", "d", "14", "14x", "0d", "-1d", "1.5d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn only_hours_entirely_before_the_cutoff_expire() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        let store = location.store();
        // 2024-01-15T09:xx (two services), 10:xx, 11:xx
        let hour = 3_600_000_000_000i64;
        let t9 = 1_705_309_200_000_000_000i64;
        for (t, service) in [(t9, "a"), (t9 + 5, "b"), (t9 + hour, "a"), (t9 + 2 * hour, "a")] {
            let path = PartitionKey::for_span(t, service).file_path(location.prefix(), "01HM0000000000000000000000");
            store.put(&path, vec![1u8; 10].into()).await.unwrap();
        }
        // Something else under spans/ is never touched.
        store.put(&location.spans_path().join("README"), vec![0u8].into()).await.unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 10:59:59 — hour 09 ended at 10:00, hour 10 has not ended.
        let gone = expired(&location, at("2024-01-15T10:59:59Z")).await.unwrap();
        assert_eq!(gone.iter().map(HourPartition::name).collect::<Vec<_>>(), ["date=2024-01-15/hour=09"]);
        assert_eq!((gone[0].files.len(), gone[0].bytes), (2, 20));
        // Exactly 11:00 — hour 10 ended.
        let gone = expired(&location, at("2024-01-15T11:00:00Z")).await.unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(drop_partition(&location, &gone[0]).await.unwrap(), 2);
        assert_eq!(drop_partition(&location, &gone[0]).await.unwrap(), 0, "already gone");
        let left = expired(&location, at("2030-01-01T00:00:00Z")).await.unwrap();
        assert_eq!(left.iter().map(HourPartition::name).collect::<Vec<_>>(), ["date=2024-01-15/hour=10", "date=2024-01-15/hour=11"]);
    }
}
