//! Flight SQL end to end with arrow-flight's own client (`FlightSqlServiceClient`): prepared
//! statements with parameters, metadata, errors, and a token. The expected values are counted
//! from the fixture's JSON directly, not through tracelake.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use arrow_flight::FlightInfo;
use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};
use tracelake_query::SessionBuilder;
use tracelake_schema::{AcceptMode, PayloadFormat, convert_request, decode_payload};
use tracelake_server::{Auth, QueryEngine, QueryLimits, TracelakeFlightSql};
use tracelake_store::{DataLocation, PartitionedBuffer, SpanFileWriter};

const FIXTURE: &str = include_str!("../../../sql/fixtures/shop.json");

/// Spans per service, counted from the fixture JSON itself.
fn expected_counts() -> BTreeMap<String, i64> {
    let json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let mut counts = BTreeMap::new();
    for rs in json["resourceSpans"].as_array().unwrap() {
        let service = rs["resource"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap()
            .to_owned();
        let spans: usize = rs["scopeSpans"].as_array().unwrap().iter().map(|s| s["spans"].as_array().unwrap().len()).sum();
        *counts.entry(service).or_insert(0) += spans as i64;
    }
    counts
}

struct Server {
    _data: tempfile::TempDir,
    port: u16,
}

async fn start(token: Option<&str>) -> Server {
    let data = tempfile::tempdir().unwrap();
    let location = DataLocation::open(data.path().to_str().unwrap()).unwrap();
    let mut buffer = PartitionedBuffer::new(SpanFileWriter::new(location.clone()));
    for request in decode_payload(FIXTURE.as_bytes(), PayloadFormat::Json).unwrap() {
        buffer.push(&convert_request(&request, AcceptMode::AllOrNothing).unwrap().batch).await.unwrap();
    }
    buffer.finish().await.unwrap();
    let engine = Arc::new(QueryEngine::new(Arc::new(SessionBuilder::new(location)), QueryLimits::default()));
    let service = TracelakeFlightSql::new(engine, Auth::new(token.map(str::to_owned))).into_server();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Server { _data: data, port }
}

async fn client(server: &Server) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{}", server.port)).unwrap().connect().await.unwrap();
    FlightSqlServiceClient::new(channel)
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters_and_return_the_right_rows() {
    let server = start(None).await;
    let mut client = client(&server).await;
    let expected = expected_counts();
    let mut statement = client
        .prepare("SELECT service_name, count(*) AS n FROM spans WHERE service_name = ? GROUP BY service_name".into(), None)
        .await
        .unwrap();
    assert_eq!(statement.parameter_schema().unwrap().fields().len(), 1, "one ? parameter");
    assert_eq!(statement.dataset_schema().unwrap().field(1).data_type(), &DataType::Int64);
    for (service, count) in &expected {
        let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, true)]));
        let params = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![service.as_str()]))]).unwrap();
        statement.set_parameters(params).unwrap();
        let batches = fetch(&mut client, statement.execute().await.unwrap()).await;
        let rows: Vec<(String, i64)> = batches
            .iter()
            .flat_map(|b| {
                let names = b.column(0).as_string::<i32>().iter().map(|s| s.unwrap().to_owned()).collect::<Vec<_>>();
                let counts = b.column(1).as_primitive::<Int64Type>().values().to_vec();
                names.into_iter().zip(counts)
            })
            .collect();
        assert_eq!(rows, vec![(service.clone(), *count)]);
    }
    // A plain statement too, with an integer parameter bound through `$1`.
    let mut by_min = client.prepare("SELECT count(*) FROM spans WHERE duration_ns >= $1".into(), None).await.unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)]));
    by_min.set_parameters(RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![0]))]).unwrap()).unwrap();
    let batches = fetch(&mut client, by_min.execute().await.unwrap()).await;
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), expected.values().sum::<i64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_answers_with_the_flight_sql_schemas() {
    let server = start(None).await;
    let mut client = client(&server).await;
    let catalogs = {
        let info = client.get_catalogs().await.unwrap();
        fetch(&mut client, info).await
    };
    assert_eq!(catalogs[0].column(0).as_string::<i32>().value(0), "datafusion");
    let schemas = {
        let info = client.get_db_schemas(CommandGetDbSchemas::default()).await.unwrap();
        fetch(&mut client, info).await
    };
    let names: Vec<&str> = schemas[0].column(1).as_string::<i32>().iter().flatten().collect();
    assert!(names.contains(&"public"), "{names:?}");
    let tables = CommandGetTables {
        catalog: Some("datafusion".into()),
        db_schema_filter_pattern: Some("public".into()),
        table_name_filter_pattern: Some("sp%".into()),
        table_types: vec![],
        include_schema: true,
    };
    let tables = {
        let info = client.get_tables(tables).await.unwrap();
        fetch(&mut client, info).await
    };
    let batch = &tables[0];
    assert_eq!(batch.num_rows(), 1, "the pattern sp% matches only spans");
    assert_eq!(batch.column(2).as_string::<i32>().value(0), "spans");
    let ipc = batch.column(4).as_binary::<i32>().value(0).to_vec();
    let schema = Schema::try_from(arrow_flight::IpcMessage(ipc.into())).unwrap();
    assert!(schema.field_with_name("trace_id").is_ok() && schema.field_with_name("service").is_ok());
    let info = {
        let info = client.get_sql_info(vec![SqlInfo::FlightSqlServerName, SqlInfo::FlightSqlServerReadOnly]).await.unwrap();
        fetch(&mut client, info).await
    };
    assert_eq!(info[0].num_rows(), 2);
    let keys = CommandGetPrimaryKeys { catalog: None, db_schema: None, table: "spans".into() };
    let info = client.get_primary_keys(keys).await.unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!((schema.field(5).name().as_str(), schema.field(5).data_type()), ("key_sequence", &DataType::Int32));
    assert!(!schema.field(5).is_nullable());
    let keys = fetch(&mut client, info).await;
    assert_eq!(keys.iter().map(RecordBatch::num_rows).sum::<usize>(), 0, "no primary keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_grpc_statuses_and_the_token_is_enforced() {
    let server = start(Some("s3cret")).await;
    let mut anonymous = client(&server).await;
    let e = anonymous.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(e.to_string().contains("missing authorization"), "{e}");
    let mut authed = client(&server).await;
    authed.handshake("anyone", "s3cret").await.unwrap();
    let e = authed.execute("SELEC 1".into(), None).await.unwrap_err().to_string();
    assert!(e.contains("InvalidArgument") || e.contains("invalid argument"), "{e}");
    assert!(e.contains("Line: 1, Column: 1"), "the position is in the message: {e}");
    let e = authed.execute("SELECT * FROM nope".into(), None).await.unwrap_err().to_string();
    assert!(e.contains("NotFound") || e.contains("not found"), "{e}");
    let e = authed.execute("DROP TABLE spans".into(), None).await.unwrap_err().to_string();
    assert!(e.contains("PermissionDenied") || e.contains("DDL not supported"), "{e}");
    let mut wrong = client(&server).await;
    assert!(wrong.handshake("anyone", "nope").await.is_err());
    // Plain Flight RPCs are behind the token too.
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{}", server.port)).unwrap().connect().await.unwrap();
    let e = arrow_flight::flight_service_client::FlightServiceClient::new(channel)
        .list_actions(arrow_flight::Empty {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    // The server is still fine.
    let info = authed.execute("SELECT count(*) FROM spans".into(), None).await.unwrap();
    assert_eq!(fetch(&mut authed, info).await[0].num_rows(), 1);
}
