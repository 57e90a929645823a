//! The partition layout: `<data>/spans/date=YYYY-MM-DD/hour=HH/service=<escaped>/<ulid>.parquet`.
//!
//! Service names are percent-escaped with exactly the characters that DataFusion escapes in a
//! partition value (controls, space, `%`, `/`, `?`, `#`) plus those `object_store` escapes in a
//! path segment (`\ { ^ } ` ] " > [ ~ < | *`), and all non-ASCII bytes. That is the spelling
//! DataFusion looks up when a query fixes `date`, `hour` and `service` with `=` (it lists that
//! one directory), and DataFusion's listing and DuckDB's `hive_partitioning` decode it back.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use object_store::path::Path;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Directory of the `spans` table under a data location.
pub const SPANS_DIR: &str = "spans";

/// Extension of span files.
pub const FILE_EXTENSION: &str = ".parquet";

const SERVICE_ESCAPE: &AsciiSet = &CONTROLS
    // DataFusion's partition-value set
    .add(b' ')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    // object_store's path-segment set
    .add(b'\\')
    .add(b'{')
    .add(b'^')
    .add(b'}')
    .add(b'`')
    .add(b']')
    .add(b'"')
    .add(b'>')
    .add(b'[')
    .add(b'~')
    .add(b'<')
    .add(b'|')
    .add(b'*');

/// Identifies one partition directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// UTC date of the spans' start time.
    pub date: NaiveDate,
    /// UTC hour of the spans' start time (0–23).
    pub hour: u32,
    /// The spans' `service.name`.
    pub service: String,
}

impl PartitionKey {
    /// The partition of a span starting at `start_ns` (Unix nanoseconds) in `service`.
    pub fn for_span(start_ns: i64, service: &str) -> Self {
        let t = DateTime::from_timestamp_nanos(start_ns);
        Self { date: t.date_naive(), hour: t.hour(), service: service.to_owned() }
    }

    /// The partition directory relative to the table directory,
    /// e.g. `date=2026-11-26/hour=07/service=checkout`.
    pub fn relative_dir(&self) -> String {
        format!(
            "date={:04}-{:02}-{:02}/hour={:02}/service={}",
            self.date.year(),
            self.date.month(),
            self.date.day(),
            self.hour,
            escape_service(&self.service)
        )
    }

    /// The object path of a new file of this partition under `root` (the data location's prefix).
    pub fn file_path(&self, root: &Path, file_stem: &str) -> Path {
        let raw = format!("{SPANS_DIR}/{}/{file_stem}{FILE_EXTENSION}", self.relative_dir());
        // Every segment is made only of escaped characters, so parsing cannot fail; fall back to
        // the always-valid `From` conversion just in case.
        let relative = Path::parse(&raw).unwrap_or_else(|_| Path::from(raw.as_str()));
        root.parts().chain(relative.parts()).collect()
    }
}

/// Percent-escapes a service name for use as a path segment.
pub fn escape_service(service: &str) -> String {
    // `.` and `..` need no escape: the segment is always `service=<name>`, never a bare dot.
    utf8_percent_encode(service, SERVICE_ESCAPE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_of_a_span() {
        // 2018-12-13T14:51:00Z
        let key = PartitionKey::for_span(1_544_712_660_000_000_000, "frontend");
        assert_eq!(key.relative_dir(), "date=2018-12-13/hour=14/service=frontend");
        let before_epoch_hour = PartitionKey::for_span(1_544_709_599_999_999_999, "a");
        assert_eq!(before_epoch_hour.hour, 13);
    }

    #[test]
    fn service_names_are_escaped() {
        assert_eq!(escape_service("my svc/ä"), "my%20svc%2F%C3%A4");
        assert_eq!(escape_service("cart-v2_x.y"), "cart-v2_x.y");
        assert_eq!(escape_service("api:v2+b@c=d"), "api:v2+b@c=d");
        assert_eq!(escape_service("[x]*"), "%5Bx%5D%2A");
        assert_eq!(escape_service(".."), "..");
        let key = PartitionKey::for_span(0, "a b");
        let path = key.file_path(&Path::from("root/dir"), "01ABC");
        assert_eq!(path.as_ref(), "root/dir/spans/date=1970-01-01/hour=00/service=a%20b/01ABC.parquet");
    }
}
