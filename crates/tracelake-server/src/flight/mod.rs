//! Arrow Flight SQL over the [`QueryEngine`]: statements and prepared statements (with `?` or
//! `$n` parameters), results streamed batch by batch, catalog metadata for BI tools, errors as
//! gRPC statuses, optional bearer-token auth. Read-only: updates, ingest, Substrait and
//! transactions are refused.

pub mod handles;
pub mod metadata;

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Auth;
use crate::engine::{PlannedQuery, QueryEngine};
use crate::error::QueryError;
use handles::StatementHandle;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service.
#[derive(Debug, Clone)]
pub struct TracelakeFlightSql {
    engine: Arc<QueryEngine>,
    auth: Auth,
}

impl TracelakeFlightSql {
    /// A service answering from `engine`, requiring `auth`.
    pub fn new(engine: Arc<QueryEngine>, auth: Auth) -> Self {
        Self { engine, auth }
    }

    /// As a tonic service, with a generous message size limit for parameters and handles, and
    /// the token checked on every call (also `ListActions` and the other plain Flight RPCs).
    pub fn into_server(self) -> FlightServer {
        let interceptor = AuthInterceptor { auth: self.auth.clone(), engine: Arc::clone(&self.engine) };
        InterceptedService::new(FlightServiceServer::new(self).max_decoding_message_size(16 << 20), interceptor)
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        self.auth.check(header).map_err(|e| {
            self.engine.metrics().record(std::time::Duration::ZERO, Some(&e));
            e.to_status()
        })
    }

    async fn plan<T>(&self, request: &Request<T>, sql: &str) -> Result<PlannedQuery, Status> {
        self.engine.plan(org_id(request), sql).await.map_err(|e| e.to_status())
    }

    /// Plans a handle's SQL and binds its parameters (types checked by DataFusion).
    async fn plan_handle<T>(&self, request: &Request<T>, handle: &StatementHandle) -> Result<PlannedQuery, Status> {
        let planned = self.plan(request, &handle.sql).await?;
        if handle.params.is_empty() {
            return Ok(planned);
        }
        planned.bind(handle.params.clone()).map_err(|e| e.to_status())
    }

    async fn run(&self, planned: PlannedQuery) -> Result<Response<DoGetStream>, Status> {
        let stream = self.engine.execute(planned, Vec::new()).await.map_err(|e| e.to_status())?;
        let schema = stream.schema();
        let batches = stream.map_err(|e| FlightError::Tonic(Box::new(e.to_status())));
        Ok(Response::new(encode(schema, batches)))
    }
}

/// The tenant of a request (`x-scope-orgid` metadata, as the HTTP header).
fn org_id<T>(request: &Request<T>) -> Option<&str> {
    request.metadata().get("x-scope-orgid").and_then(|v| v.to_str().ok())
}

/// Streams `batches` as Flight data (the schema first, so empty results still carry it).
fn encode(schema: SchemaRef, batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static) -> DoGetStream {
    Box::pin(FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from))
}

fn one_batch(batch: Result<RecordBatch, QueryError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| e.to_status())?;
    let schema = batch.schema();
    Ok(Response::new(encode(schema, futures::stream::once(async move { Ok(batch) }))))
}

/// A `FlightInfo` whose one endpoint's ticket is `ticket`.
fn flight_info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(format!("cannot encode the schema: {e}")))?;
    Ok(bytes)
}

fn read_only(what: &str) -> Status {
    Status::permission_denied(format!("{what} is not supported: tracelake serves read-only SQL"))
}

#[tonic::async_trait]
impl FlightSqlService for TracelakeFlightSql {
    type FlightService = TracelakeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        self.check(&request)?;
        let token = self.auth.token().unwrap_or_default().to_owned();
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if !token.is_empty() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("the configured token is not a valid header value"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let planned = self.plan(&request, &query.query).await?;
        let handle = StatementHandle::encode(&query.query, None).map_err(|e| e.to_status())?;
        let ticket = TicketStatementQuery { statement_handle: handle }.as_any().encode_to_vec();
        flight_info(&planned.schema(), ticket, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let handle = StatementHandle::decode(&ticket.statement_handle).map_err(|e| e.to_status())?;
        let planned = self.plan_handle(&request, &handle).await?;
        self.run(planned).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let handle = StatementHandle::decode(&cmd.prepared_statement_handle).map_err(|e| e.to_status())?;
        let planned = self.plan_handle(&request, &handle).await?;
        flight_info(&planned.schema(), cmd.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let handle = StatementHandle::decode(&cmd.prepared_statement_handle).map_err(|e| e.to_status())?;
        let planned = self.plan_handle(&request, &handle).await?;
        self.run(planned).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.check(&request)?;
        let planned = self.plan(&request, &query.query).await?;
        let parameters = planned.parameters().map_err(|e| e.to_status())?;
        let parameter_schema = if parameters.is_empty() {
            bytes::Bytes::new()
        } else {
            let fields: Vec<Field> = parameters
                .into_iter()
                .map(|(name, data_type)| Field::new(name, data_type.unwrap_or(DataType::Null), true))
                .collect();
            schema_bytes(&Schema::new(fields))?
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: StatementHandle::encode(&query.query, None).map_err(|e| e.to_status())?,
            dataset_schema: schema_bytes(&planned.schema())?,
            parameter_schema,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.check(&request)?;
        let handle = StatementHandle::decode(&query.prepared_statement_handle).map_err(|e| e.to_status())?;
        let flight_data = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(flight_data)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "{rows} parameter rows bound to a query; a query takes one set of parameters"
            )));
        }
        let bound = batches.into_iter().find(|b| b.num_rows() == 1);
        let handle = StatementHandle::encode(&handle.sql, bound.as_ref()).map_err(|e| e.to_status())?;
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle) })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles carry everything; there is nothing to free.
        self.check(&request)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let ctx = self.engine.metadata_session(org_id(&request)).await.map_err(|e| e.to_status())?;
        let mut builder = query.into_builder();
        for catalog in ctx.catalog_names() {
            builder.append(catalog);
        }
        one_batch(builder.build().map_err(|e| QueryError::Internal(e.to_string())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let ctx = self.engine.metadata_session(org_id(&request)).await.map_err(|e| e.to_status())?;
        one_batch(metadata::db_schemas(&ctx, query))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let ctx = self.engine.metadata_session(org_id(&request)).await.map_err(|e| e.to_status())?;
        one_batch(metadata::tables(&ctx, query).await)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        let mut builder = query.into_builder();
        for t in metadata::TABLE_TYPES {
            builder.append(t);
        }
        one_batch(builder.build().map_err(|e| QueryError::Internal(e.to_string())))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder(&metadata::SQL_INFO).schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        one_batch(query.into_builder(&metadata::SQL_INFO).build().map_err(|e| QueryError::Internal(e.to_string())))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder(&metadata::XDBC_TYPES).schema();
        flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        one_batch(query.into_builder(&metadata::XDBC_TYPES).build().map_err(|e| QueryError::Internal(e.to_string())))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        flight_info(&metadata::primary_keys_schema(), query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_primary_keys(&self, _query: CommandGetPrimaryKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        one_batch(Ok(RecordBatch::new_empty(metadata::primary_keys_schema())))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        flight_info(&metadata::foreign_keys_schema(), query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_exported_keys(&self, _query: CommandGetExportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        one_batch(Ok(RecordBatch::new_empty(metadata::foreign_keys_schema())))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        flight_info(&metadata::foreign_keys_schema(), query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_imported_keys(&self, _query: CommandGetImportedKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        one_batch(Ok(RecordBatch::new_empty(metadata::foreign_keys_schema())))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        flight_info(&metadata::foreign_keys_schema(), query.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        one_batch(Ok(RecordBatch::new_empty(metadata::foreign_keys_schema())))
    }

    async fn do_get_fallback(&self, request: Request<Ticket>, message: Any) -> Result<Response<DoGetStream>, Status> {
        self.check(&request)?;
        Err(Status::invalid_argument(format!("unknown ticket type {}", message.type_url)))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("an update statement"))
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("bulk ingest over Flight SQL (send spans over OTLP)"))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("a prepared update"))
    }

    async fn do_put_substrait_plan(
        &self,
        _ticket: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::unimplemented("Substrait plans are not supported; send SQL"))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The Flight service type, for `tonic::transport::Server::add_service`.
pub type FlightServer = InterceptedService<FlightServiceServer<TracelakeFlightSql>, AuthInterceptor>;

/// Checks the token before any Flight RPC runs.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    auth: Auth,
    engine: Arc<QueryEngine>,
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.auth.check(header) {
            Ok(()) => Ok(request),
            Err(e) => {
                self.engine.metrics().record(std::time::Duration::ZERO, Some(&e));
                Err(e.to_status())
            }
        }
    }
}
