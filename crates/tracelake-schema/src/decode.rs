//! Decoding OTLP trace payloads: binary protobuf, OTLP JSON, and JSON lines.
//!
//! OTLP JSON follows the OTLP specification's JSON mapping (hex trace/span ids, enum values as
//! integers, 64-bit integers as strings or numbers); unknown fields are ignored as it requires.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::error::{Error, Result};

/// Encoding of an OTLP trace payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// One binary protobuf `ExportTraceServiceRequest`.
    Protobuf,
    /// OTLP JSON: one request, or several requests as JSON lines / concatenated documents.
    Json,
}

impl PayloadFormat {
    /// Guesses the format from a file name (`.json`, `.jsonl`, `.ndjson` → JSON; `.pb`,
    /// `.bin`, `.protobuf`, `.binpb` → protobuf); `None` when the name does not tell.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            "pb" | "bin" | "protobuf" | "binpb" | "proto" => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// Guesses the format from the content: JSON starts with `{` after whitespace.
    pub fn sniff(bytes: &[u8]) -> Self {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Protobuf,
        }
    }
}

/// Decodes a payload into its requests. Protobuf yields exactly one request; JSON yields one per
/// document (a JSON lines file gives one per line). An empty JSON payload yields none.
pub fn decode_payload(bytes: &[u8], format: PayloadFormat) -> Result<Vec<ExportTraceServiceRequest>> {
    match format {
        PayloadFormat::Protobuf => Ok(vec![ExportTraceServiceRequest::decode(bytes)?]),
        PayloadFormat::Json => {
            let mut requests = Vec::new();
            let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<ExportTraceServiceRequest>();
            for (i, item) in stream.enumerate() {
                let request = item.map_err(|source| Error::Json {
                    line: (i > 0 || source.line() > 1).then_some(source.line()),
                    source,
                })?;
                requests.push(request);
            }
            Ok(requests)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_SPAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
      "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
      "spanId":"eee19b7ec3c1b174","name":"op","kind":2,"startTimeUnixNano":"1544712660000000000",
      "endTimeUnixNano":"1544712661000000000","attributes":[{"key":"n","value":{"intValue":"7"}}]}]}]}]}"#;

    #[test]
    fn json_and_json_lines() {
        let one = decode_payload(ONE_SPAN.as_bytes(), PayloadFormat::Json).unwrap();
        assert_eq!(one.len(), 1);
        let span = &one[0].resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.trace_id.len(), 16);
        let lines = format!("{}\n{}\n", ONE_SPAN.replace('\n', ""), ONE_SPAN.replace('\n', ""));
        assert_eq!(decode_payload(lines.as_bytes(), PayloadFormat::Json).unwrap().len(), 2);
        assert!(decode_payload(b"  \n", PayloadFormat::Json).unwrap().is_empty());
    }

    #[test]
    fn protobuf_round_trip_and_garbage() {
        let req = &decode_payload(ONE_SPAN.as_bytes(), PayloadFormat::Json).unwrap()[0];
        let bytes = req.encode_to_vec();
        assert_eq!(&decode_payload(&bytes, PayloadFormat::Protobuf).unwrap()[0], req);
        let err = decode_payload(&bytes[..bytes.len() - 3], PayloadFormat::Protobuf).unwrap_err();
        assert!(err.to_string().contains("invalid OTLP protobuf"), "{err}");
    }

    #[test]
    fn bad_json_names_the_line() {
        let text = format!("{}\n{{\"resourceSpans\": 5}}\n", ONE_SPAN.replace('\n', ""));
        let err = decode_payload(text.as_bytes(), PayloadFormat::Json).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(PayloadFormat::from_file_name("a/b.JSON"), Some(PayloadFormat::Json));
        assert_eq!(PayloadFormat::from_file_name("x.jsonl.gz"), Some(PayloadFormat::Json));
        assert_eq!(PayloadFormat::from_file_name("x.pb"), Some(PayloadFormat::Protobuf));
        assert_eq!(PayloadFormat::from_file_name("x"), None);
        assert_eq!(PayloadFormat::sniff(b"  {"), PayloadFormat::Json);
    }
}
