//! Attribute limits: how many attributes a span keeps and how long their values may be.
//!
//! As the OpenTelemetry specification suggests for SDKs ("attribute limits"), a limit never
//! refuses a span: attributes past the count limit are dropped (the first ones are kept) and
//! values longer than the length limit are truncated at a UTF-8 character boundary (keys are
//! kept whole, as the specification says; the request size limit bounds them).
//! Every drop and truncation is counted, so `/metrics` shows that it happened.
//!
//! The limits apply to each attribute list separately: the resource's, the span's, and each
//! event's and link's. Dedicated columns (`http_route`, …) hold the limited value.

/// Limits applied while converting spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeLimits {
    /// Attributes kept per attribute list (resource, span, event, link).
    pub max_attributes: usize,
    /// Longest rendered value in bytes; longer ones are truncated.
    pub max_value_bytes: usize,
}

impl AttributeLimits {
    /// No limits (bulk loads of trusted files with `tracelake ingest`).
    pub const UNLIMITED: Self = Self { max_attributes: usize::MAX, max_value_bytes: usize::MAX };
    /// Default attributes per list for servers (the OTel SDK default is 128 span attributes;
    /// resources of Kubernetes workloads can carry more).
    pub const DEFAULT_MAX_ATTRIBUTES: usize = 256;
    /// Default longest value for servers: 64 KiB (room for stack traces).
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 << 10;
}

impl Default for AttributeLimits {
    /// The server defaults.
    fn default() -> Self {
        Self { max_attributes: Self::DEFAULT_MAX_ATTRIBUTES, max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES }
    }
}

/// What the limits changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounts {
    /// Attributes dropped because a list was over `max_attributes`.
    pub dropped_attributes: u64,
    /// Values cut to `max_value_bytes`.
    pub truncated_values: u64,
}

impl LimitCounts {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: LimitCounts) {
        self.dropped_attributes += other.dropped_attributes;
        self.truncated_values += other.truncated_values;
    }
}

/// Applies `limits` to rendered key/value pairs in place, counting what changed.
pub(crate) fn limit_attributes(
    attrs: &mut Vec<(&str, Option<String>)>,
    limits: AttributeLimits,
    counts: &mut LimitCounts,
) {
    if attrs.len() > limits.max_attributes {
        counts.dropped_attributes += (attrs.len() - limits.max_attributes) as u64;
        attrs.truncate(limits.max_attributes);
    }
    if limits.max_value_bytes == usize::MAX {
        return;
    }
    for (_, value) in attrs.iter_mut() {
        if let Some(v) = value
            && v.len() > limits.max_value_bytes
        {
            v.truncate(floor_char_boundary(v, limits.max_value_bytes));
            counts.truncated_values += 1;
        }
    }
}

/// Longest `service_name` in bytes, in every mode: the service is a partition directory
/// (`service=<escaped>`), and with escaping (up to 3 bytes per byte) it must fit the 255-byte
/// file-name limit of common file systems and object stores' key-segment conventions.
pub const MAX_SERVICE_NAME_BYTES: usize = 80;

/// `name` cut to [`MAX_SERVICE_NAME_BYTES`] on a character boundary.
pub(crate) fn cut_service_name(mut name: String) -> String {
    name.truncate(floor_char_boundary(&name, MAX_SERVICE_NAME_BYTES));
    name
}

/// The largest index ≤ `max` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_attributes_past_the_count_and_cuts_long_values_on_char_boundaries() {
        let long = "ä".repeat(10); // 20 bytes
        let mut attrs = vec![("a", Some(long.clone())), ("b", None), ("c", Some("x".into()))];
        let mut counts = LimitCounts::default();
        limit_attributes(&mut attrs, AttributeLimits { max_attributes: 2, max_value_bytes: 5 }, &mut counts);
        // "ää" is 4 bytes; a third "ä" would end at byte 6 > 5.
        assert_eq!(attrs, vec![("a", Some("ää".to_owned())), ("b", None)]);
        assert_eq!(counts, LimitCounts { dropped_attributes: 1, truncated_values: 1 });
    }

    #[test]
    fn service_names_fit_a_directory_name() {
        assert_eq!(cut_service_name("checkout".into()), "checkout");
        let cut = cut_service_name("ö".repeat(100));
        assert_eq!(cut.len(), 80);
        assert!(cut.chars().all(|c| c == 'ö'));
    }

    #[test]
    fn keys_stay_whole_and_unlimited_changes_nothing() {
        let key = "k".repeat(9);
        let mut attrs = vec![(key.as_str(), Some("v".repeat(9)))];
        let mut counts = LimitCounts::default();
        limit_attributes(&mut attrs, AttributeLimits::UNLIMITED, &mut counts);
        assert_eq!((attrs[0].1.as_deref(), counts), (Some("vvvvvvvvv"), LimitCounts::default()));
        limit_attributes(&mut attrs, AttributeLimits { max_attributes: 8, max_value_bytes: 4 }, &mut counts);
        assert_eq!((attrs[0].0, attrs[0].1.as_deref()), (key.as_str(), Some("vvvv")));
        assert_eq!(counts.truncated_values, 1);
    }
}
