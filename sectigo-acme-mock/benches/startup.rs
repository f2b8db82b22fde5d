//! Start-up time of an embedded mock after the first (the CA is generated once per process
//! and shared): what every test that starts its own mock pays.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use sectigo_acme_mock::MockCa;

fn startup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The first start generates the process's CA; it is not what is measured.
    runtime.block_on(async { drop(MockCa::start().await) });
    c.bench_function("start and drop a mock (CA shared)", |b| {
        b.iter(|| runtime.block_on(async { drop(MockCa::start().await) }));
    });
    c.bench_function("start, fetch the directory, drop", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ca = MockCa::start().await;
                let response = ca
                    .http_client()
                    .get(ca.directory_url())
                    .send()
                    .await
                    .expect("directory");
                assert_eq!(response.status(), 200);
            })
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = startup
}
criterion_main!(benches);
