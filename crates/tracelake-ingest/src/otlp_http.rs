//! The transport-independent half of OTLP/HTTP trace ingest (`POST /v1/traces`): turning a
//! request body into an `ExportTraceServiceRequest`, and the response into bytes, with the
//! status codes the OTLP specification gives.
//!
//! | situation | status |
//! |---|---|
//! | `Content-Type` not `application/x-protobuf` or `application/json` | 415 |
//! | `Content-Encoding` other than identity or `gzip` | 415 |
//! | body (compressed, or after decompression) larger than the limit | 413 |
//! | body that does not decode (bad gzip, protobuf, JSON) | 400 |
//! | some spans invalid | 200 with `partial_success` (rejected count + message) |
//!
//! Decompression is bounded: a gzip bomb stops at the limit with 413, never more memory.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP JSON: hex ids, enums as integers).
    Json,
}

impl OtlpEncoding {
    /// The encoding named by a `Content-Type` header (parameters like `charset` ignored).
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, HttpError> {
        let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            "" => Err(HttpError::new(415, "missing Content-Type: use application/x-protobuf or application/json")),
            other => Err(HttpError::new(
                415,
                format!("unsupported Content-Type '{other}': use application/x-protobuf or application/json"),
            )),
        }
    }

    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// An HTTP-level refusal: status code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status (4xx).
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
}

impl HttpError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

/// Decodes an OTLP/HTTP trace request body. `max_bytes` bounds both the received and the
/// decompressed size.
pub fn decode_request(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    max_bytes: usize,
) -> Result<(OtlpEncoding, ExportTraceServiceRequest), HttpError> {
    let encoding = OtlpEncoding::from_content_type(content_type)?;
    if body.len() > max_bytes {
        return Err(HttpError::new(413, format!("request body of {} bytes exceeds the limit of {max_bytes}", body.len())));
    }
    let gunzipped;
    let raw: &[u8] = match content_encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => body,
        Some("gzip") => {
            gunzipped = gunzip_bounded(body, max_bytes)?;
            &gunzipped
        }
        Some(other) => return Err(HttpError::new(415, format!("unsupported Content-Encoding '{other}': use gzip or none"))),
    };
    let request = match encoding {
        OtlpEncoding::Protobuf => ExportTraceServiceRequest::decode(raw)
            .map_err(|e| HttpError::new(400, format!("invalid OTLP protobuf: {e}")))?,
        OtlpEncoding::Json => serde_json::from_slice(raw).map_err(|e| HttpError::new(400, format!("invalid OTLP JSON: {e}")))?,
    };
    Ok((encoding, request))
}

fn gunzip_bounded(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_bytes));
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(max_bytes as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| HttpError::new(400, format!("invalid gzip body: {e}")))?;
    if out.len() > max_bytes {
        return Err(HttpError::new(413, format!("decompressed request exceeds the limit of {max_bytes} bytes")));
    }
    Ok(out)
}

/// The success response: `partial_success` is set only when spans were rejected, as the OTLP
/// specification asks.
pub fn encode_response(encoding: OtlpEncoding, rejected_spans: usize, error_message: &str) -> Vec<u8> {
    let response = ExportTraceServiceResponse {
        partial_success: (rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected_spans).unwrap_or(i64::MAX),
            error_message: error_message.to_owned(),
        }),
    };
    match encoding {
        OtlpEncoding::Protobuf => response.encode_to_vec(),
        // `{}` rather than `{"partialSuccess":null}` for full success.
        OtlpEncoding::Json => match &response.partial_success {
            None => b"{}".to_vec(),
            Some(_) => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const JSON: &str = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn content_types_and_encodings() {
        let (enc, req) = decode_request(Some("application/json; charset=utf-8"), None, JSON.as_bytes(), 1 << 20).unwrap();
        assert_eq!(enc, OtlpEncoding::Json);
        assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].name, "x");
        let proto = req.encode_to_vec();
        let (enc, again) = decode_request(Some("application/x-protobuf"), Some("gzip"), &gzip(&proto), 1 << 20).unwrap();
        assert_eq!((enc, again), (OtlpEncoding::Protobuf, req));
        assert_eq!(decode_request(Some("text/plain"), None, b"", 10).unwrap_err().status, 415);
        assert_eq!(decode_request(None, None, b"", 10).unwrap_err().status, 415);
        assert_eq!(decode_request(Some("application/json"), Some("br"), b"{}", 10).unwrap_err().status, 415);
    }

    #[test]
    fn bad_bodies_are_400() {
        let e = decode_request(Some("application/x-protobuf"), None, b"\xff\xff\xff", 100).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("invalid OTLP protobuf"), "{e}");
        assert_eq!(decode_request(Some("application/json"), None, b"{not json", 100).unwrap_err().status, 400);
        assert_eq!(decode_request(Some("application/json"), Some("gzip"), b"not gzip", 100).unwrap_err().status, 400);
    }

    #[test]
    fn size_limits_and_gzip_bombs_are_413() {
        assert_eq!(decode_request(Some("application/json"), None, JSON.as_bytes(), 10).unwrap_err().status, 413);
        // 10 MB of zeros compresses to ~10 KB; the limit is checked on the decompressed size.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        let e = decode_request(Some("application/x-protobuf"), Some("gzip"), &bomb, 1 << 20).unwrap_err();
        assert_eq!(e.status, 413, "{e}");
    }

    #[test]
    fn partial_success_only_when_spans_were_rejected() {
        let ok = encode_response(OtlpEncoding::Json, 0, "");
        assert_eq!(String::from_utf8(ok).unwrap(), "{}");
        let partial = encode_response(OtlpEncoding::Protobuf, 2, "2 invalid spans");
        let decoded = ExportTraceServiceResponse::decode(&partial[..]).unwrap();
        let ps = decoded.partial_success.unwrap();
        assert_eq!((ps.rejected_spans, ps.error_message.as_str()), (2, "2 invalid spans"));
    }
}
