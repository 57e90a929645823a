//! The query engine's limits, on queries whose cost is known: a join whose build side cannot
//! fit the memory pool, a scan that cannot finish within the timeout, and more queries than
//! slots and queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracelake_query::SessionBuilder;
use tracelake_server::{QueryEngine, QueryError, QueryLimits};
use tracelake_store::DataLocation;

fn engine(limits: QueryLimits) -> (tempfile::TempDir, QueryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
    (dir, QueryEngine::new(Arc::new(SessionBuilder::new(location)), limits))
}

async fn drain(engine: &QueryEngine, sql: &str) -> Result<usize, QueryError> {
    let mut stream = engine.run(None, sql).await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_over_the_memory_limit_fails_clearly() {
    let (_d, engine) = engine(QueryLimits { memory_bytes: 16 << 20, ..QueryLimits::default() });
    // The hash join's build side holds 4M 8-byte keys plus a hash table: far over 16 MiB.
    let sql = "SELECT count(*) FROM range(4000000) a JOIN range(4000000) b ON a.value = b.value";
    let e = drain(&engine, sql).await.unwrap_err();
    assert!(matches!(e, QueryError::MemoryLimit { limit, .. } if limit == 16 << 20), "{e:?}");
    assert_eq!(e.http_status(), 422);
    assert_eq!(engine.metrics().total("memory_limit"), 1);
    // The same query fits a bigger pool: the limit, not the query, was the problem.
    let (_d2, roomy) = self::engine(QueryLimits { memory_bytes: 1 << 30, ..QueryLimits::default() });
    assert_eq!(drain(&roomy, sql).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_query_is_cancelled_at_the_timeout() {
    let (_d, engine) = engine(QueryLimits { timeout: Duration::from_millis(500), ..QueryLimits::default() });
    let started = Instant::now();
    // Counting 10^11 rows takes minutes.
    let e = drain(&engine, "SELECT count(*) FROM range(100000000000)").await.unwrap_err();
    assert!(matches!(e, QueryError::Timeout(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "returned after {:?}", started.elapsed());
    assert_eq!(e.to_status().code(), tonic::Code::DeadlineExceeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_beyond_slots_and_queue_are_told_the_server_is_busy() {
    let (_d, engine) = engine(QueryLimits { max_concurrent: 1, max_queued: 0, ..QueryLimits::default() });
    let running = engine.run(None, "SELECT count(*) FROM range(100000000000)").await.unwrap();
    let e = engine.run(None, "SELECT 1").await.unwrap_err();
    assert!(matches!(e, QueryError::Busy { .. }), "{e:?}");
    assert_eq!(e.http_status(), 503);
    drop(running); // frees the slot (and cancels the query)
    assert_eq!(drain(&engine, "SELECT 1").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gets_its_timeout_even_when_an_operator_never_yields() {
    let (_d, engine) = engine(QueryLimits { timeout: Duration::from_millis(500), ..QueryLimits::default() });
    let started = Instant::now();
    // 10^12 rows out of a cross join (a filter keeps DataFusion from answering from row-count
    // statistics): the operators above it loop batch after batch without returning to the
    // runtime. The engine runs queries on their own thread pool and answers the client at the
    // deadline regardless (the join's current step keeps its thread until it ends).
    let sql = "SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.value + b.value = 7";
    let e = drain(&engine, sql).await.unwrap_err();
    assert!(matches!(e, QueryError::Timeout(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "returned after {:?}", started.elapsed());
}
