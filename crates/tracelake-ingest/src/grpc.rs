//! The OTLP/gRPC trace receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! (tonic; gzip accepted; message size bounded).
//!
//! Status codes as the OTLP specification gives them: invalid spans → OK with
//! `partial_success`; a request that cannot be converted → `INVALID_ARGUMENT`; the buffer is
//! at its memory limit → `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` (OTLP exporters
//! retry only when it is present); the write-ahead log cannot take data → `UNAVAILABLE`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::tenants::{IngestRouter, RouteError};

/// The gRPC `TraceService` over the ingesters a router picks (by `x-scope-orgid`).
pub struct GrpcReceiver {
    router: Arc<dyn IngestRouter>,
}

/// A tonic service for `TraceService/Export`, accepting gzip and messages up to `max_bytes`.
pub fn otlp_grpc_service(router: Arc<dyn IngestRouter>, max_bytes: usize) -> TraceServiceServer<GrpcReceiver> {
    TraceServiceServer::new(GrpcReceiver { router })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_bytes)
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let bytes = prost::Message::encoded_len(request.get_ref());
        let org_id = request.metadata().get("x-scope-orgid").and_then(|v| v.to_str().ok());
        let ingester = match self.router.route(org_id).await {
            Ok(ingester) => ingester,
            Err(RouteError::InvalidTenant(message)) => return Err(Status::invalid_argument(message)),
            Err(RouteError::Ingest(e)) => return Err(Status::unavailable(format!("cannot open the tenant's write-ahead log: {e}"))),
        };
        match ingester.ingest(request.get_ref(), bytes).await {
            Ok(outcome) => {
                let partial_success = (!outcome.rejected.is_empty()).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(outcome.rejected.len()).unwrap_or(i64::MAX),
                    error_message: outcome.refusal_message(),
                });
                Ok(Response::new(ExportTraceServiceResponse { partial_success }))
            }
            Err(crate::Error::Schema(e)) => Err(Status::invalid_argument(e.to_string())),
            Err(e @ crate::Error::Overloaded { .. }) => Err(Status::with_error_details(
                Code::ResourceExhausted,
                e.to_string(),
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
            )),
            Err(e) => {
                tracing::error!(error = %e, "ingest failed");
                Err(Status::unavailable(format!("cannot store spans right now: {e}")))
            }
        }
    }
}
