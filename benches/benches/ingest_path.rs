//! The ingest hot path, stage by stage, on a generated workload:
//! OTLP protobuf decode → Arrow conversion → partition split + sorted Parquet encoding.
//!
//! Run: `cargo bench -p tracelake-benches --bench ingest_path`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use tracelake_gen::{GenConfig, Generator};
use tracelake_schema::{AcceptMode, PayloadFormat, SpanBatchBuilder, convert_request, decode_payload, otlp};
use tracelake_store::{DataLocation, PartitionedBuffer, SpanFileWriter};

const SPANS: u64 = 50_000;

fn workload() -> Vec<otlp::collector::trace::v1::ExportTraceServiceRequest> {
    Generator::new(GenConfig { seed: 1, spans: SPANS, ..GenConfig::default() }).expect("config").collect()
}

fn bench(c: &mut Criterion) {
    let requests = workload();
    let encoded: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let mut group = c.benchmark_group("ingest_path");
    group.throughput(Throughput::Elements(SPANS));
    group.sample_size(10);

    group.bench_function("generate", |b| b.iter(workload));
    group.bench_function("decode_protobuf", |b| {
        b.iter(|| {
            for bytes in &encoded {
                decode_payload(bytes, PayloadFormat::Protobuf).expect("decode");
            }
        })
    });
    group.bench_function("convert_to_arrow", |b| {
        b.iter(|| {
            for request in &requests {
                convert_request(request, AcceptMode::AllOrNothing).expect("convert");
            }
        })
    });

    let mut builder = SpanBatchBuilder::with_capacity(SPANS as usize);
    for request in &requests {
        builder.append_resource_spans(&request.resource_spans);
    }
    let batch = builder.finish().expect("batch");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    group.bench_function("partition_sort_encode_write", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let location = DataLocation::open(dir.path().to_str().expect("utf8")).expect("open");
            runtime.block_on(async {
                let mut buffer = PartitionedBuffer::new(SpanFileWriter::new(location));
                buffer.push(&batch).await.expect("push");
                buffer.finish().await.expect("finish")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
