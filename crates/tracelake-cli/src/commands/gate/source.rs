//! Where a side's spans come from: a data location queried in-process, or a tracelake
//! Flight SQL server (the same SQL either way).

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use arrow_flight::sql::client::FlightSqlServiceClient;
use tonic::transport::{Channel, Endpoint};
use tracelake_query::{QueryPolicy, SessionBuilder, SessionOptions};
use tracelake_store::DataLocation;

use crate::error::{CliError, Result};

/// A place to run the gate's selection queries.
pub enum SpanSource {
    /// Embedded engine on a data location.
    Embedded {
        /// The session.
        ctx: SessionContext,
        /// The location, for messages.
        location: String,
    },
    /// A Flight SQL server.
    Flight {
        /// The client (with token / tenant headers set).
        client: Box<FlightSqlServiceClient<Channel>>,
        /// The URL, for messages.
        url: String,
    },
}

impl SpanSource {
    /// Opens a data location (it must exist).
    pub async fn embedded(data: &str) -> Result<Self> {
        let location = DataLocation::open_existing(data)?;
        let ctx = SessionBuilder::new(location).with_options(SessionOptions::default()).build().await?;
        Ok(SpanSource::Embedded { ctx, location: data.to_string() })
    }

    /// Connects to a Flight SQL server: `grpc://host:port`, `grpc+tcp://…` or `http://…`.
    pub async fn flight(url: &str, token: Option<&str>, tenant: Option<&str>) -> Result<Self> {
        let http = ["grpc+tcp://", "grpc://", "http://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .map(|rest| format!("http://{rest}"))
            .ok_or_else(|| {
                CliError::Usage(format!("Flight SQL URL {url:?}: use grpc://HOST:PORT (TLS is not supported by the gate yet)"))
            })?;
        let endpoint = Endpoint::from_shared(http).map_err(|e| CliError::Usage(format!("Flight SQL URL {url:?}: {e}")))?;
        let channel = endpoint
            .connect_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| CliError::Usage(format!("cannot connect to Flight SQL server {url}: {e}")))?;
        let mut client = FlightSqlServiceClient::new(channel);
        if let Some(token) = token {
            client.set_header("authorization", format!("Bearer {token}"));
        }
        if let Some(tenant) = tenant {
            client.set_header("x-scope-orgid", tenant);
        }
        Ok(SpanSource::Flight { client: Box::new(client), url: url.to_string() })
    }

    /// Where this source reads from.
    pub fn describe(&self) -> &str {
        match self {
            SpanSource::Embedded { location, .. } => location,
            SpanSource::Flight { url, .. } => url,
        }
    }

    /// Runs `sql` and collects its result.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>> {
        match self {
            SpanSource::Embedded { ctx, .. } => {
                let df = QueryPolicy::ReadOnly.plan(ctx, sql).await?;
                Ok(df.collect().await?)
            }
            SpanSource::Flight { client, url } => {
                let fail = |e: arrow_flight::error::FlightError| CliError::Usage(format!("Flight SQL server {url}: {}", flight_message(&e)));
                let info = client.execute(sql.to_string(), None).await.map_err(fail)?;
                let mut batches = Vec::new();
                for endpoint in info.endpoint {
                    let Some(ticket) = endpoint.ticket else { continue };
                    let stream = client.do_get(ticket).await.map_err(fail)?;
                    batches.extend(stream.try_collect::<Vec<_>>().await.map_err(fail)?);
                }
                Ok(batches)
            }
        }
    }
}

/// The server's message of a gRPC error (not tonic's debug dump).
fn flight_message(e: &arrow_flight::error::FlightError) -> String {
    match e {
        arrow_flight::error::FlightError::Tonic(status) => format!("{} ({:?})", status.message(), status.code()),
        other => other.to_string(),
    }
}
